"""The web manager's new-campaign form offers every option a client may send to POST /v1/jobs."""

from __future__ import annotations

import re
from pathlib import Path

from cluster.jobs.options import JobOptions

FORM = Path(__file__).parents[2] / "api" / "web" / "campaign.js"
# Options the form sets by another control: category by "commercial", send_time by "optimized",
# variants by their list of fieldsets; dry_run is what Preview does; confirms_optout is Ulak's own.
BY_OTHER_NAMES = {
    "category": "f-commercial",
    "send_time": "f-optimized",
    "dry_run": "dryRun",
    "variants": '"data-field": "variants"',
}


def test_every_option_has_a_field() -> None:
    script = FORM.read_text(encoding="utf-8")
    boxes = set(re.findall(r'fieldBox\("([a-z_]+)"', script))
    missing = [
        name
        for name in JobOptions.model_fields
        if name != "confirms_optout" and name not in boxes and BY_OTHER_NAMES.get(name, "\0") not in script
    ]
    assert not missing, f"add these options to the form in {FORM.name}: {missing}"
