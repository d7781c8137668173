"""SMS text encoding: GSM 03.38 with national shift tables, UCS-2, and part planning."""

from ulak.text.alphabet import Alphabet, alphabet
from ulak.text.plan import Concat, Encoding, MessagePlan, MessageTooLong, Segment, plan

__all__ = ["Alphabet", "Concat", "Encoding", "MessagePlan", "MessageTooLong", "Segment", "alphabet", "plan"]
