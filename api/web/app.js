// Ulak web manager: one page, hash routes, the public API with the key the user signs in with.
// No framework and no build step; every value from the API reaches the page as text (textContent),
// never as HTML.
"use strict";

const I18N = {
  tr: {
    "nav.jobs": "Kampanyalar", "nav.new": "Yeni kampanya", "nav.operators": "Operatörler", "nav.lists": "Listeler", "nav.replies": "Yanıtlar", "key.read_only": "Bu anahtar yalnızca okuyabilir: kampanya başlatamaz, durduramaz, listeleri değiştiremez.",
    "replies.title": "Gelen yanıtlar", "replies.kind": "Tür", "replies.all": "Hepsi", "replies.counts": "Şimdiye kadar",
    "replies.list": "Anahtar kelime listesi", "replies.list_name": "Liste adı", "replies.show": "Göster",
    "kind.optout": "Ret", "kind.optin": "Yeniden katılım", "kind.keyword": "Anahtar kelime", "kind.answer": "Anket yanıtı",
    "kind.reply": "Serbest yanıt", "col.from": "Gönderen", "col.to": "Kısa numara", "col.keyword": "Kelime",
    "signout": "Çıkış", "signin.title": "Ulak Web Yöneticisi", "signin.key": "API anahtarı",
    "signin.go": "Giriş", "signin.hint": "Anahtar oluşturmak için: ulak keys create web",
    "jobs.title": "Kampanyalar", "jobs.empty": "Henüz kampanya yok.", "col.job": "Kampanya", "col.state": "Durum",
    "col.created": "Oluşturulma", "col.accepted": "Kabul", "col.delivered": "İletilen", "col.progress": "İlerleme",
    "new.title": "Yeni kampanya", "new.file": "Dosya (CSV, XLSX, Parquet)", "new.template": "Mesaj şablonu",
    "new.template.hint": "Sütunlar {ad} gibi yazılır; {link} izlenen kısa bağlantıdır.",
    "new.sender": "Gönderici adı", "new.name": "Kampanya adı", "new.commercial": "Ticari ileti (İYS onayı gerekir)",
    "new.optimized": "Her alıcıya, tıklama olasılığının en yüksek olduğu saatte gönder (24 saat içinde; %10'u rastgele saatte, karşılaştırma için)",
    "preview.plan": "Gönderim planı", "col.hour": "Saat", "col.optimized": "En uygun saat", "col.control": "Rastgele (kontrol)",
    "new.brand": "Marka", "new.window": "Gönderim saatleri (ör. 09:00-20:00)", "new.link": "Bağlantı adresi ({link} için)",
    "new.preview": "Önizle", "new.confirm": "Onayla ve gönder", "new.previewing": "Dosya hazırlanıyor…",
    "preview.title": "Önizleme", "preview.rows": "Satır", "preview.accepted": "Gönderilecek", "preview.rejected": "Reddedilen",
    "preview.held_out": "Kontrol grubu", "preview.parts": "Parça", "preview.cost": "Tahmini maliyet",
    "preview.reasons": "Red nedenleri", "preview.samples": "Örnek mesajlar", "preview.operators": "Operatörlere göre",
    "col.reason": "Neden", "col.count": "Adet", "col.operator": "Operatör", "col.messages": "Mesaj", "col.parts": "Parça",
    "col.cost": "Maliyet", "col.number": "Numara", "col.text": "Metin", "col.encoding": "Kodlama",
    "job.may": "Bu durumda yapılabilir", "job.ended": "Kampanya bitti: değiştirilemez, raporları aşağıda.", "job.nothing": "Şu an yapılacak bir şey yok.", "job.pause": "Duraklat", "job.resume": "Sürdür", "job.cancel": "İptal et", "job.progress": "İlerleme",
    "job.rate": "Hız", "job.eta": "Kalan süre", "job.msgs": "mesaj/sn", "job.parts_s": "parça/sn",
    "job.downloads": "Raporlar", "job.report": "Satır raporu (CSV)", "job.rejected": "Reddedilen satırlar (CSV)",
    "job.summary_csv": "Özet (CSV)", "job.counts": "Sayılar", "job.funnel": "Teslimat hunisi",
    "job.throughput": "Operatör hızı (parça/sn, tüm işler)", "job.kpis": "Kampanya sonuçları",
    "job.survey": "Anket", "job.ab": "A/B testi", "job.error": "Hata", "job.waiting": "Bekliyor",
    "state.queued": "sırada", "state.ingesting": "hazırlanıyor", "state.scheduled": "planlandı", "state.sending": "gönderiliyor",
    "state.paused": "duraklatıldı", "state.draining": "bitiriliyor", "state.cancelling": "iptal ediliyor",
    "state.done": "tamamlandı", "state.failed": "başarısız", "state.cancelled": "iptal edildi",
    "k.sent": "Gönderilen", "k.delivered": "İletilen", "k.delivery_rate": "İletim oranı", "k.clicks": "Tekil tıklama",
    "k.click_rate": "Tıklama oranı", "k.conversions": "Dönüşüm", "k.conversion_rate": "Dönüşüm oranı",
    "k.value": "Toplam değer", "k.cost": "Maliyet", "k.roi": "ROI", "k.failed": "Başarısız", "k.pending": "Bekleyen",
    "k.in_flight": "Yolda", "k.acked": "Kabul edilen", "k.unknown": "Belirsiz", "k.cancelled": "İptal",
    "k.opted_out": "Gönderimde RET", "k.no_consent": "Gönderimde izin geri alındı",
    "k.frequency_capped": "Sıklık sınırı", "k.expired": "Geçerlilik doldu (gönderilmedi)",
    "k.rows": "Satır", "k.rejected": "Reddedilen", "k.converted": "Dönüşen", "k.clicked": "Tıklayan",
    "k.responses": "Yanıt", "k.response_rate": "Yanıt oranı", "k.yes": "EVET", "k.no": "HAYIR", "k.nps": "NPS",
    "k.promoters": "Destekçi", "k.passives": "Pasif", "k.detractors": "Eleştirmen", "k.free_replies": "Serbest yanıtlar",
    "k.variant": "Varyant", "k.significant": "Anlamlı", "k.p_value": "p değeri", "k.p_best": "En iyi olma olasılığı",
    "k.leader": "Önde", "k.recipients": "Alıcı",
    "ops.title": "Operatörler", "ops.binds": "Bağlantılar", "col.bind": "Bağlantı", "col.window": "Pencere",
    "col.submitted": "Gönderilen", "col.learned": "Öğrenilen hız", "col.throttled": "0x58/0x14", "col.reconnects": "Yeniden bağlanma",
    "col.last_error": "Son hata", "col.node": "Düğüm", "col.tps": "TPS", "col.price": "Parça fiyatı", "col.rate": "Hız",
    "lists.title": "Ret ve onay listeleri", "lists.optouts": "Ret listesi", "lists.brand": "Marka (boş: genel liste)",
    "lists.add": "Ekle", "lists.remove": "Çıkar", "lists.numbers": "Numaralar (virgül ya da satır ile)",
    "lists.consents": "İYS onay kayıtları", "lists.lookup": "Sorgula", "lists.total": "Toplam",
    "col.source": "Kaynak", "col.at": "Zaman", "lists.export": "İYS dışa aktarım (CSV)",
    "nav.compare": "Karşılaştır", "compare.title": "Kampanyaları karşılaştır", "compare.count": "Son kampanyalar",
    "compare.trends": "Oranların seyri (eskiden yeniye)", "compare.all": "Tümü", "compare.empty": "Henüz biten kampanya yok.",
    "previews.title": "Önizlemeler", "previews.hint": "Önizlemeler hiçbir şey göndermez ve bittikten bir gün sonra silinir.",
    "col.delivery_rate": "İletim", "col.click_rate": "Tıklama", "col.conversion_rate": "Dönüşüm", "col.value": "Değer",
    "col.roi": "ROI", "col.nps": "NPS",
    "job.curves": "Zaman içinde (toplam)", "job.rate_ops": "Bu kampanyanın operatör hızı (parça/sn)",
    "new.frequency_cap": "Sıklık sınırı", "cap.default": "Varsayılan (ticari: beklet)", "cap.defer": "Beklet", "cap.refuse": "Gönderme",
    "cap.off": "Kapalı", "new.schedule": "Zamanlama", "new.send_at": "En erken gönderim", "new.send_at.hint": "Tarayıcınızın saat diliminde",
    "new.window_timezone": "Saatlerin dilimi (recipient: alıcınınki)", "new.validity": "Geçerlilik (dakika)",
    "new.horizon": "En uygun saat için ufuk (saat)", "new.control": "Kontrol payı (%)",
    "new.link_section": "Bağlantı ve hedefler", "new.utm": "UTM parametreleri", "new.goal_conversions": "Hedef dönüşüm",
    "new.goal_value": "Hedef değer", "new.ab": "A/B testi ve kontrol grubu", "new.survey": "Anket",
    "ab.variant": "Varyant", "ab.name": "Ad", "ab.weight": "Ağırlık", "ab.send_at": "Kendi gönderim zamanı",
    "ab.template": "Kendi metni (boş: kampanyanınki)", "ab.remove": "Varyantı çıkar", "ab.add": "Varyant ekle",
    "ab.hint": "Her varyantın kendi metni, göndericisi ya da zamanı olabilir; alıcılar ağırlıklara göre bölünür.",
    "ab.holdout": "Kontrol grubu (%; mesaj almaz)", "ab.test_share": "Test dilimi (%; kalanına kazanan gider)",
    "ab.decide_after": "Kazanan şu kadar sonra seçilir (dakika)", "ab.winner_by": "Kazananı belirleyen",
    "survey.kind": "Soru tipi", "survey.none": "Anket yok", "survey.yes_no": "EVET/HAYIR", "survey.nps": "NPS (0-10)",
    "survey.reply_to": "Yanıtların geldiği numara (boş: gönderici)", "survey.window": "Yanıt süresi (saat)",
    "survey.followup": "Ardından gönderilecek mesaj", "survey.yes": "EVET", "survey.no": "HAYIR",
    "survey.promoter": "destekçi (9-10)", "survey.passive": "pasif (7-8)", "survey.detractor": "eleştirmen (0-6)",
    "preview.variants": "Varyantlara göre", "preview.rest": "kalan (kazanana)",
    "new.advanced": "Dosya, operatörler ve diğerleri", "adv.phone_column": "Numara sütunu", "adv.detected": "Boş: bulunur",
    "adv.text_column": "Metin sütunu (şablon yerine)", "adv.text_column.hint": "Her satırın metni bu sütundan", "adv.sheet": "Sayfa (boş: ilki)",
    "adv.encoding": "Dosya kodlaması", "adv.operators": "Yalnızca bu operatörler (virgülle)", "adv.weight": "Öncelik (aynı anda gönderen işlere karşı)",
    "adv.split_seed": "A/B bölme tohumu", "adv.click_window": "Tıklamadan sonra dönüşüm süresi (gün)",
    "adv.delivery_window": "İletimden sonra dönüşüm süresi (gün)", "adv.webhook": "Webhook adresi (iletim raporları)",
    "yes": "evet", "no": "hayır", "none": "—", "loading": "Yükleniyor…", "error.signin": "Anahtar geçersiz.",
  },
  en: {
    "nav.jobs": "Campaigns", "nav.new": "New campaign", "nav.operators": "Operators", "nav.lists": "Lists", "nav.replies": "Replies", "key.read_only": "This key can only read: it cannot start, pause or cancel campaigns, or change lists.",
    "replies.title": "Replies received", "replies.kind": "Kind", "replies.all": "All", "replies.counts": "So far",
    "replies.list": "Keyword list", "replies.list_name": "List name", "replies.show": "Show",
    "kind.optout": "Opt-out", "kind.optin": "Opt-in", "kind.keyword": "Keyword", "kind.answer": "Survey answer",
    "kind.reply": "Free reply", "col.from": "From", "col.to": "Short code", "col.keyword": "Keyword",
    "signout": "Sign out", "signin.title": "Ulak web manager", "signin.key": "API key",
    "signin.go": "Sign in", "signin.hint": "To create a key: ulak keys create web",
    "jobs.title": "Campaigns", "jobs.empty": "No campaigns yet.", "col.job": "Campaign", "col.state": "State",
    "col.created": "Created", "col.accepted": "Accepted", "col.delivered": "Delivered", "col.progress": "Progress",
    "new.title": "New campaign", "new.file": "File (CSV, XLSX, Parquet)", "new.template": "Message template",
    "new.template.hint": "Columns are written like {name}; {link} is the tracked short link.",
    "new.sender": "Sender name", "new.name": "Campaign name", "new.commercial": "Commercial message (needs İYS consent)",
    "new.optimized": "Send each recipient at the hour they are most likely to click (within 24 h; 10 % at random hours, to compare)",
    "preview.plan": "Send plan", "col.hour": "Hour", "col.optimized": "Best hour", "col.control": "Random (control)",
    "new.brand": "Brand", "new.window": "Send window (e.g. 09:00-20:00)", "new.link": "Link target (for {link})",
    "new.preview": "Preview", "new.confirm": "Confirm and send", "new.previewing": "Preparing the file…",
    "preview.title": "Preview", "preview.rows": "Rows", "preview.accepted": "To send", "preview.rejected": "Refused",
    "preview.held_out": "Held out", "preview.parts": "Parts", "preview.cost": "Estimated cost",
    "preview.reasons": "Refused by reason", "preview.samples": "Sample messages", "preview.operators": "Per operator",
    "col.reason": "Reason", "col.count": "Count", "col.operator": "Operator", "col.messages": "Messages", "col.parts": "Parts",
    "col.cost": "Cost", "col.number": "Number", "col.text": "Text", "col.encoding": "Encoding",
    "job.may": "In this state you may", "job.ended": "The campaign has ended: nothing to change; its reports are below.", "job.nothing": "Nothing to do right now.", "job.pause": "Pause", "job.resume": "Resume", "job.cancel": "Cancel", "job.progress": "Progress",
    "job.rate": "Rate", "job.eta": "Time left", "job.msgs": "msgs/s", "job.parts_s": "parts/s",
    "job.downloads": "Reports", "job.report": "Row report (CSV)", "job.rejected": "Refused rows (CSV)",
    "job.summary_csv": "Summary (CSV)", "job.counts": "Counts", "job.funnel": "Delivery funnel",
    "job.throughput": "Operator throughput (parts/s, all jobs)", "job.kpis": "Campaign results",
    "job.survey": "Survey", "job.ab": "A/B test", "job.error": "Error", "job.waiting": "Waiting",
    "state.queued": "queued", "state.ingesting": "ingesting", "state.scheduled": "scheduled", "state.sending": "sending",
    "state.paused": "paused", "state.draining": "draining", "state.cancelling": "cancelling",
    "state.done": "done", "state.failed": "failed", "state.cancelled": "cancelled",
    "k.sent": "Sent", "k.delivered": "Delivered", "k.delivery_rate": "Delivery rate", "k.clicks": "Unique clicks",
    "k.click_rate": "Click rate", "k.conversions": "Conversions", "k.conversion_rate": "Conversion rate",
    "k.value": "Total value", "k.cost": "Cost", "k.roi": "ROI", "k.failed": "Failed", "k.pending": "Pending",
    "k.in_flight": "In flight", "k.acked": "Accepted", "k.unknown": "Unknown", "k.cancelled": "Cancelled",
    "k.opted_out": "Opted out while sending", "k.no_consent": "Consent withdrawn while sending",
    "k.frequency_capped": "Frequency capped", "k.expired": "Expired unsent",
    "k.rows": "Rows", "k.rejected": "Refused", "k.converted": "Converted", "k.clicked": "Clicked",
    "k.responses": "Responses", "k.response_rate": "Response rate", "k.yes": "YES", "k.no": "NO", "k.nps": "NPS",
    "k.promoters": "Promoters", "k.passives": "Passives", "k.detractors": "Detractors", "k.free_replies": "Free replies",
    "k.variant": "Variant", "k.significant": "Significant", "k.p_value": "p-value", "k.p_best": "P(best)",
    "k.leader": "Leader", "k.recipients": "Recipients",
    "ops.title": "Operators", "ops.binds": "Binds", "col.bind": "Bind", "col.window": "Window",
    "col.submitted": "Submitted", "col.learned": "Learned rate", "col.throttled": "0x58/0x14", "col.reconnects": "Reconnects",
    "col.last_error": "Last error", "col.node": "Node", "col.tps": "TPS", "col.price": "Price per part", "col.rate": "Rate",
    "lists.title": "Opt-out and consent lists", "lists.optouts": "Opt-outs", "lists.brand": "Brand (empty: the global list)",
    "lists.add": "Add", "lists.remove": "Remove", "lists.numbers": "Numbers (comma or line separated)",
    "lists.consents": "İYS consent records", "lists.lookup": "Look up", "lists.total": "Total",
    "col.source": "Source", "col.at": "When", "lists.export": "İYS export (CSV)",
    "nav.compare": "Compare", "compare.title": "Compare campaigns", "compare.count": "Last campaigns",
    "compare.trends": "Rates over campaigns (oldest to newest)", "compare.all": "All", "compare.empty": "No campaigns yet.",
    "previews.title": "Previews", "previews.hint": "Previews send nothing and are deleted a day after they end.",
    "col.delivery_rate": "Delivery", "col.click_rate": "Clicks", "col.conversion_rate": "Conversion", "col.value": "Value",
    "col.roi": "ROI", "col.nps": "NPS",
    "job.curves": "Over time (cumulative)", "job.rate_ops": "This campaign's rate per operator (parts/s)",
    "new.frequency_cap": "Frequency cap", "cap.default": "Default (commercial: defer)", "cap.defer": "Defer", "cap.refuse": "Refuse",
    "cap.off": "Off", "new.schedule": "Schedule", "new.send_at": "Not before", "new.send_at.hint": "In your browser's time zone",
    "new.window_timezone": "Zone of the window (recipient: each recipient's)", "new.validity": "Validity (minutes)",
    "new.horizon": "Horizon for the best hour (hours)", "new.control": "Control share (%)",
    "new.link_section": "Link and goals", "new.utm": "UTM parameters", "new.goal_conversions": "Goal: conversions",
    "new.goal_value": "Goal: value", "new.ab": "A/B test and holdout", "new.survey": "Survey",
    "ab.variant": "Variant", "ab.name": "Name", "ab.weight": "Weight", "ab.send_at": "Its own send time",
    "ab.template": "Its own text (empty: the campaign's)", "ab.remove": "Remove variant", "ab.add": "Add variant",
    "ab.hint": "Each variant may have its own text, sender or send time; recipients are split by weight.",
    "ab.holdout": "Holdout (%; sent nothing)", "ab.test_share": "Test slice (%; the rest get the winner)",
    "ab.decide_after": "Winner chosen after (minutes)", "ab.winner_by": "Winner by",
    "survey.kind": "Question type", "survey.none": "No survey", "survey.yes_no": "YES/NO", "survey.nps": "NPS (0-10)",
    "survey.reply_to": "Number the answers come to (empty: the sender)", "survey.window": "Answers counted for (hours)",
    "survey.followup": "Follow-up message", "survey.yes": "YES", "survey.no": "NO",
    "survey.promoter": "promoter (9-10)", "survey.passive": "passive (7-8)", "survey.detractor": "detractor (0-6)",
    "preview.variants": "Per variant", "preview.rest": "rest (to the winner)",
    "new.advanced": "File, operators and more", "adv.phone_column": "Number column", "adv.detected": "Empty: detected",
    "adv.text_column": "Text column (instead of a template)", "adv.text_column.hint": "Each row's text from this column", "adv.sheet": "Sheet (empty: the first)",
    "adv.encoding": "File encoding", "adv.operators": "Only these operators (comma separated)", "adv.weight": "Priority (against jobs sending at once)",
    "adv.split_seed": "A/B split seed", "adv.click_window": "Conversion window after a click (days)",
    "adv.delivery_window": "Conversion window after delivery (days)", "adv.webhook": "Webhook URL (delivery reports)",
    "yes": "yes", "no": "no", "none": "—", "loading": "Loading…", "error.signin": "The key is not valid.",
  },
};

let lang = localStorage.getItem("ulak.lang") || "tr";
const t = (key) => (I18N[lang] && I18N[lang][key]) || I18N.en[key] || key;
const locale = () => (lang === "tr" ? "tr-TR" : "en-GB");
const num = (n) => (n === null || n === undefined ? t("none") : Number(n).toLocaleString(locale()));
const pct = (r) => (r === null || r === undefined ? t("none") : (r * 100).toLocaleString(locale(), { maximumFractionDigits: 1 }) + " %");
const when = (iso) => (iso ? new Date(iso).toLocaleString(locale()) : t("none"));
// h("td", {class: "num"}, "12"): an element with attributes and children (strings become text).
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "style") el.style.cssText = v; // CSSOM: allowed by the pages' CSP, unlike the attribute
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}

const FOCUSABLE = "a[href], button, input, select, textarea, summary, [tabindex]";

// el.replaceChildren, leaving out the absent (null: a section whose feature is off). A page that
// redraws itself (the lists every few seconds) keeps the keyboard's place: the control that had
// the focus, by its position among el's controls, has it again.
function put(el, ...children) {
  const active = document.activeElement;
  const at = active && active !== el && el.contains(active) ? [...el.querySelectorAll(FOCUSABLE)].indexOf(active) : -1;
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  if (at >= 0) {
    const again = el.querySelectorAll(FOCUSABLE)[at];
    if (again) again.focus({ preventScroll: true });
  }
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children.flat()) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function table(headers, rows, numeric = []) {
  return h("div", { class: "scroll", tabindex: 0 }, h("table", {},
    h("thead", {}, h("tr", {}, headers.map((x, i) => h("th", { class: numeric.includes(i) ? "num" : null }, x)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c, i) => h("td", { class: numeric.includes(i) ? "num" : null }, c)))))));
}

const kpi = (label, value) => h("div", { class: "kpi" }, h("b", {}, value), h("span", {}, label));
const badge = (state, label) => h("span", { class: `badge ${state}` }, label || state);
const stateBadge = (s) => badge(s, t(`state.${s}`));

// ------------------------------------------------------------------------------------------- API

const key = () => sessionStorage.getItem("ulak.key");
const writable = () => sessionStorage.getItem("ulak.scope") !== "read";  // a read-only key sees no controls

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${key()}`, ...(options.headers || {}) };
  let body = options.body;
  if (body && !(body instanceof FormData) && typeof body !== "string") {
    body = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, { ...options, headers, body });
  if (response.status === 401 && path !== "/v1/jobs?limit=1") {
    signOut();
    throw new ApiError(401, { message: t("error.signin") });
  }
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError(response.status, typeof data === "object" ? data : { message: data });
  return data;
}

// Saves what *path* answers as a file (the key goes in a header, so a plain link cannot do it).
async function download(path, filename) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${key()}` } });
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => ({})));
  const url = URL.createObjectURL(await response.blob());
  const a = h("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// Server-sent events with the key in a header (EventSource cannot send one): calls on(event, data).
async function events(path, on, signal) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${key()}` }, signal });
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => ({})));
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const chunk = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of chunk.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) on(name, JSON.parse(data.join("\n")));
    }
  }
}

function showError(where, error) {
  put(where, h("p", { class: "error", role: "alert" }, error.message || String(error)));
}

// --------------------------------------------------------------------------------------- routing

let leave = []; // what the current page stops when the user goes elsewhere (timers, streams)

function onLeave(fn) {
  leave.push(fn);
}

function route() {
  for (const fn of leave) fn();
  leave = [];
  translateStatic();
  const app = document.getElementById("app");
  if (!key()) return signInPage(app);
  if (!sessionStorage.getItem("ulak.scope")) {  // signed in before the page knew keys' scopes
    api("/v1/me").then((me) => { sessionStorage.setItem("ulak.scope", me.scope); route(); }, (error) => showError(app, error));
    return;
  }
  document.querySelector("#nav a[href='#/new']").hidden = !writable();
  const [, page, arg] = (location.hash || "#/jobs").split("/");
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.getAttribute("href") === `#/${page}`);
  const pages = { jobs: jobsPage, compare: comparePage, new: newPage, job: jobPage, operators: operatorsPage, lists: listsPage, replies: repliesPage };
  (pages[page] || jobsPage)(app, arg && decodeURIComponent(arg));
}

function translateStatic() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  document.getElementById("lang").textContent = lang === "tr" ? "English" : "Türkçe";
  document.getElementById("nav").hidden = !key();
  document.getElementById("signout").hidden = !key();
}

function signOut() {
  sessionStorage.removeItem("ulak.key");
  sessionStorage.removeItem("ulak.scope");
  location.hash = "#/jobs";
  route();
}

// ------------------------------------------------------------------------------------------ pages

function signInPage(app) {
  const input = h("input", { type: "password", id: "key", autocomplete: "off", required: true });
  const status = h("div");
  const form = h("form", {
    class: "card signin",
    onsubmit: async (e) => {
      e.preventDefault();
      sessionStorage.setItem("ulak.key", input.value.trim());
      try {
        await api("/v1/jobs?limit=1");
        sessionStorage.setItem("ulak.scope", (await api("/v1/me")).scope);
        route();
      } catch (error) {
        sessionStorage.removeItem("ulak.key");
        showError(status, error.status === 401 ? new Error(t("error.signin")) : error);
      }
    },
  },
  h("h1", {}, t("signin.title")),
  h("label", { for: "key" }, t("signin.key")), input,
  h("div", { class: "actions" }, h("button", { type: "submit", id: "signin" }, t("signin.go"))),
  h("p", { class: "muted" }, t("signin.hint")), status);
  put(app, form);
  input.focus();
}

function progressOf(view) {
  const c = view.counts;
  if (!c.accepted) return view.ended ? 1 : 0;
  const stopped = (c.opted_out || 0) + (c.no_consent || 0) + (c.frequency_capped || 0) + (c.expired || 0);  // ended unsent
  return Math.min(1, (c.acked + c.failed + c.unknown + c.cancelled + stopped) / c.accepted);
}

function progressBar(ratio) {
  const p = Math.round(ratio * 1000) / 10;
  return h("div", { class: "progress", role: "progressbar", "aria-label": t("job.progress"), "aria-valuenow": p, "aria-valuemin": 0, "aria-valuemax": 100 },
    h("div", { style: `width:${p}%` }), h("span", {}, `${p.toLocaleString(locale())} %`));
}

const money = (x) => (x === null || x === undefined ? t("none") : Number(x).toLocaleString(locale(), { minimumFractionDigits: 2, maximumFractionDigits: 2 }));

// Campaigns (with their rates, value, cost and ROI from /v1/campaigns) and, apart, the previews.
async function jobsPage(app) {
  put(app, h("h1", {}, t("jobs.title")), h("p", { class: "muted" }, t("loading")));
  let results = {};
  let resultsAt = 0;
  let gone = false; // the user went elsewhere while a read was under way: draw nothing
  onLeave(() => { gone = true; });
  const draw = async () => {
    try {
      const fresh = Date.now() - resultsAt > 15000;
      const [{ jobs }, previews, compared] = await Promise.all([
        api("/v1/jobs?limit=50&kind=campaigns"), api("/v1/jobs?limit=20&kind=previews"),
        fresh ? api("/v1/campaigns?limit=50") : Promise.resolve(null)]);
      if (gone) return;
      if (compared) {
        results = Object.fromEntries(compared.campaigns.map((c) => [c.id, c]));
        resultsAt = Date.now();
      }
      const rows = jobs.map((j) => {
        const r = results[j.id] || {};
        return [
          h("a", { href: `#/job/${encodeURIComponent(j.id)}` }, j.options.name || j.id),
          stateBadge(j.state), when(j.times.created), num(j.counts.accepted),
          pct(r.delivery_rate ?? j.delivery_rate), pct(r.click_rate ?? j.clicks.click_rate),
          pct(r.conversion_rate ?? j.conversions.conversion_rate), money(r.value ?? j.conversions.value), money(r.cost),
          r.roi === null || r.roi === undefined ? t("none") : pct(r.roi), progressBar(progressOf(j)),
        ];
      });
      put(app, h("h1", {}, t("jobs.title")),
        h("div", { class: "card", id: "campaigns" }, jobs.length ? table(
          [t("col.job"), t("col.state"), t("col.created"), t("col.accepted"), t("col.delivery_rate"), t("col.click_rate"),
            t("col.conversion_rate"), t("col.value"), t("col.cost"), t("col.roi"), t("col.progress")],
          rows, [3, 4, 5, 6, 7, 8, 9]) : h("p", {}, t("jobs.empty"))),
        previews.jobs.length ? h("div", { class: "card", id: "previews" }, h("h2", {}, t("previews.title")),
          h("p", { class: "muted" }, t("previews.hint")),
          table([t("col.job"), t("col.state"), t("col.created"), t("preview.rows"), t("preview.accepted"), t("preview.parts")],
            previews.jobs.map((j) => [h("a", { href: `#/job/${encodeURIComponent(j.id)}` }, j.options.name || j.id),
              stateBadge(j.state), when(j.times.created), num(j.counts.rows), num(j.counts.accepted), num(j.parts.total)]), [3, 4, 5]))
          : null);
    } catch (error) {
      if (!gone) showError(app, error);
    }
  };
  await draw();
  if (gone) return;
  const timer = setInterval(draw, 5000);
  onLeave(() => clearInterval(timer));
}

// The last N campaigns side by side, and each rate's trend over them: in all, per operator, per variant.
async function comparePage(app) {
  const count = h("select", { id: "c-count" }, [5, 10, 20, 50].map((n) => h("option", { value: n, selected: n === 10 }, String(n))));
  const out = h("div", { id: "compare" });
  const draw = async () => {
    try {
      const { campaigns } = await api(`/v1/campaigns?limit=${count.value}`);
      if (!campaigns.length) return put(out, h("p", { class: "muted" }, t("compare.empty")));
      const oldest = [...campaigns].reverse();
      const rates = [["delivery_rate", t("k.delivery_rate")], ["click_rate", t("k.click_rate")], ["conversion_rate", t("k.conversion_rate")]];
      const trend = ([field, label]) => {
        const series = { [t("compare.all")]: oldest.map((c) => c[field]) };
        const ops = [...new Set(oldest.flatMap((c) => Object.keys(c.operators)))].sort();
        const vars = [...new Set(oldest.flatMap((c) => Object.keys(c.variants)))].sort();
        for (const op of ops) series[op] = oldest.map((c) => (c.operators[op] ? c.operators[op][field] : null));
        for (const v of vars) series[`${t("k.variant")} ${v}`] = oldest.map((c) => (c.variants[v] ? c.variants[v][field] : null));
        return h("div", { class: "card", "data-trend": field }, h("h2", {}, label),
          lineChart(series, { percent: true, label: `${label}: ${t("compare.trends")}`, labels: oldest.map((_, i) => String(i + 1)) }));
      };
      put(out, h("div", { class: "card" }, table(
        ["#", t("col.job"), t("col.state"), t("col.created"), t("k.sent"), t("col.delivery_rate"), t("col.click_rate"),
          t("col.conversion_rate"), t("col.value"), t("col.cost"), t("col.roi"), t("col.nps")],
        oldest.map((c, i) => [String(i + 1), h("a", { href: `#/job/${encodeURIComponent(c.id)}`, "data-campaign": c.id }, c.name || c.id),
          stateBadge(c.state), when(c.created), num(c.sent), pct(c.delivery_rate), pct(c.click_rate), pct(c.conversion_rate),
          money(c.value), money(c.cost), c.roi === null ? t("none") : pct(c.roi), c.nps === null ? t("none") : num(c.nps)]),
        [0, 4, 5, 6, 7, 8, 9, 10, 11])),
      h("h2", {}, t("compare.trends")), h("div", { class: "grid" }, rates.map(trend)));
    } catch (error) {
      showError(out, error);
    }
  };
  count.addEventListener("change", draw);
  put(app, h("h1", {}, t("compare.title")),
    h("div", { class: "card" }, h("label", { for: "c-count" }, t("compare.count")), count), out);
  await draw();
}

// Parts per second per operator (a series of the last 90 reads) and per bind (the latest), from
// the binds' submitted totals read every *every* ms.
function throughputSampler(draw, every = 2000) {
  let last = null;
  const series = {};
  const bindRates = {};
  const tick = async () => {
    try {
      const operators = await api("/v1/operators");
      const now = performance.now();
      const totals = Object.fromEntries(operators.map((o) => [o.name, o.binds.reduce((s, b) => s + b.submitted, 0)]));
      const binds = Object.fromEntries(operators.flatMap((o) => o.binds.map((b) => [`${o.name}/${b.bind}`, b.submitted])));
      if (last) {
        const seconds = (now - last.at) / 1000;
        for (const [op, total] of Object.entries(totals)) {
          (series[op] = series[op] || []).push(Math.max(0, (total - (last.totals[op] || 0)) / seconds));
          if (series[op].length > 90) series[op].shift();
        }
        for (const [name, total] of Object.entries(binds)) {
          bindRates[name] = Math.max(0, (total - (last.binds[name] || 0)) / seconds);
        }
      }
      last = { at: now, totals, binds };
      draw(series, operators, bindRates);
    } catch (error) {
      /* the next tick tries again; the page shows the API's errors elsewhere */
    }
  };
  tick();
  const timer = setInterval(tick, every);
  onLeave(() => clearInterval(timer));
}

function funnel(summary) {
  const steps = [
    [t("k.sent"), summary.sent],
    [t("k.delivered"), summary.delivered],
    [t("k.clicked"), summary.clicks.unique],
    [t("k.converted"), summary.converters],
  ];
  const top = Math.max(1, steps[0][1]);
  return h("div", { class: "funnel", id: "funnel" }, table(["", "", ""], steps.map(([label, n]) => [
    label, h("div", { class: "bar", style: `width:${Math.max(0.5, (100 * n) / top)}%` }), num(n)]), [2]));
}

function surveyCard(s) {
  const parts = [h("div", { class: "kpis" },
    kpi(t("k.responses"), num(s.responses)), kpi(t("k.response_rate"), pct(s.response_rate)),
    s.yes_no ? kpi(t("k.yes"), `${num(s.yes_no.yes)} (${pct(s.yes_no.yes_share)})`) : null,
    s.yes_no ? kpi(t("k.no"), `${num(s.yes_no.no)} (${pct(s.yes_no.no_share)})`) : null,
    s.nps ? kpi(t("k.nps"), h("span", { id: "nps" }, s.nps.nps === null ? t("none") : num(s.nps.nps))) : null,
    s.nps ? kpi(t("k.promoters"), `${num(s.nps.promoters)} (${pct(s.nps.promoters_share)})`) : null,
    s.nps ? kpi(t("k.passives"), `${num(s.nps.passives)} (${pct(s.nps.passives_share)})`) : null,
    s.nps ? kpi(t("k.detractors"), `${num(s.nps.detractors)} (${pct(s.nps.detractors_share)})`) : null)];
  if (s.nps && s.nps.distribution) parts.push(npsChart(s.nps));
  if (s.free_replies && s.free_replies.length) {
    parts.push(h("h2", { style: "margin-top:1rem" }, t("k.free_replies")),
      table([t("col.number"), t("col.text")], s.free_replies.slice(0, 50).map((r) => [r.number || r.source || "", r.text || ""])));
  }
  return h("div", { class: "card funnel", id: "survey" }, h("h2", {}, t("job.survey")), ...parts);
}

function abCard(summary) {
  const ab = summary.ab_test;
  const rows = Object.entries(summary.variants).map(([name, v]) => [name, num(v.recipients), num(v.delivered),
    pct(v.click_rate), num(v.conversions), pct(v.conversion_rate)]);
  const verdict = (test, label) => {
    if (!test) return null;
    const best = test.probability_best ? Object.entries(test.probability_best).map(([n, p]) => `${n}: ${pct(p)}`).join(", ") : t("none");
    return h("p", {}, h("b", {}, label), ` — ${t("k.leader")}: ${test.leader || t("none")}; ${t("k.significant")}: `,
      test.significant ? t("yes") : t("no"), `; ${t("k.p_value")}: ${test.p_value ?? t("none")}; ${t("k.p_best")}: ${best}`);
  };
  return h("div", { class: "card", id: "ab" }, h("h2", {}, t("job.ab")),
    table([t("k.variant"), t("k.recipients"), t("k.delivered"), t("k.click_rate"), t("k.conversions"), t("k.conversion_rate")],
      rows, [1, 2, 3, 4, 5]),
    verdict(ab.clicks, t("k.click_rate")), intervalChart(ab.clicks, t("k.click_rate")),
    verdict(ab.conversions, t("k.conversion_rate")), intervalChart(ab.conversions, t("k.conversion_rate")));
}

function resultsCards(summary) {
  const cards = [h("div", { class: "card" }, h("h2", {}, t("job.kpis")), h("div", { class: "kpis" },
    kpi(t("k.sent"), num(summary.sent)), kpi(t("k.delivered"), num(summary.delivered)),
    kpi(t("k.delivery_rate"), pct(summary.delivery_rate)), kpi(t("k.clicks"), num(summary.clicks.unique)),
    kpi(t("k.click_rate"), pct(summary.click_rate)), kpi(t("k.conversions"), num(summary.conversions)),
    kpi(t("k.conversion_rate"), pct(summary.conversion_rate)),
    kpi(t("k.value"), `${summary.value} ${summary.currency}`), kpi(t("k.cost"), `${summary.cost} ${summary.currency}`),
    kpi(t("k.roi"), summary.roi === null ? t("none") : pct(summary.roi)))),
  h("div", { class: "card" }, h("h2", {}, t("job.funnel")), funnel(summary))];
  if (summary.series.points.length) cards.push(curvesChart(summary));
  if (summary.survey) cards.push(surveyCard(summary.survey));
  if (summary.ab_test) cards.push(abCard(summary));
  return cards;
}

function jobPage(app, jobId) {
  const path = `/v1/jobs/${encodeURIComponent(jobId)}`;
  const head = h("div");
  const live = h("div", { class: "card" });
  const chart = h("div", { class: "card", id: "job-rates" }, h("h2", {}, t("job.rate_ops")));
  const results = h("div");
  const downloads = h("div", { class: "card" }, h("h2", {}, t("job.downloads")), h("div", { class: "actions" },
    h("button", { type: "button", class: "secondary", id: "dl-report", onclick: () => download(`${path}/report`, `${jobId}-report.csv`) }, t("job.report")),
    h("button", { type: "button", class: "secondary", id: "dl-rejected", onclick: () => download(`${path}/rejected`, `${jobId}-rejected.csv`) }, t("job.rejected")),
    h("button", { type: "button", class: "secondary", id: "dl-summary", onclick: () => download(`${path}/summary?format=csv`, `${jobId}-summary.csv`) }, t("job.summary_csv"))));
  put(app, head, live, chart, results, downloads);
  let lastState = null;
  let lastEnded = false;
  const act = (verb) => async () => {
    try {
      show(await api(`${path}/${verb}`, { method: "POST" }));
    } catch (error) {
      showError(results, error);
    }
  };
  const show = (view) => {
    const may = (action) => view.actions.includes(action);
    const ended = view.ended;
    put(head, h("h1", {}, view.options.name || view.id, " ", h("span", { id: "job-state", "data-state": view.state }, stateBadge(view.state))),
      h("p", { class: "muted" }, view.id, " · ", view.source || ""),
      writable() ? h("div", { class: "actions" },
        h("button", { type: "button", id: "pause", disabled: !may("pause"), onclick: act("pause") }, t("job.pause")),
        h("button", { type: "button", id: "resume", class: "secondary", disabled: !may("resume"), onclick: act("resume") }, t("job.resume")),
        h("button", { type: "button", id: "cancel", class: "danger", disabled: !may("cancel"), onclick: act("cancel") }, t("job.cancel")),
        h("span", { class: "muted", id: "job-actions" }, view.actions.length
          ? `${t("job.may")}: ${view.actions.map((a) => t(`job.${a}`).toLocaleLowerCase(locale())).join(", ")}`
          : t(ended ? "job.ended" : "job.nothing")))
        : h("p", { class: "muted", id: "read-only" }, t("key.read_only")));
    const c = view.counts;
    const eta = view.eta_seconds === null ? t("none") : `${Math.ceil(view.eta_seconds).toLocaleString(locale())} s`;
    put(live, h("h2", {}, t("job.progress")), h("div", { id: "progress" }, progressBar(progressOf(view))),
      h("div", { class: "kpis", style: "margin-top:.8rem" },
        kpi(t("job.rate"), `${num(view.rates.messages_per_second)} ${t("job.msgs")}`),
        kpi(t("job.rate"), `${num(view.rates.parts_per_second)} ${t("job.parts_s")}`),
        kpi(t("job.eta"), h("span", { id: "eta" }, eta)),
        ...["rows", "rejected", "pending", "in_flight", "acked", "failed", "unknown", "cancelled", "opted_out", "no_consent", "frequency_capped", "expired"].map((k) =>
          kpi(t(`k.${k}`), h("span", { id: `count-${k}` }, num(c[k])))),
        kpi(t("k.delivered"), h("span", { id: "count-delivered" }, num(view.receipts.delivered)))),
      view.waiting ? h("p", { class: "muted" }, `${t("job.waiting")}: ${view.waiting}`) : null,
      view.error ? h("p", { class: "error" }, `${t("job.error")}: ${view.error.message}`) : null);
    if (view.state !== lastState || ended) loadSummary(view);
    lastState = view.state;
    lastEnded = ended;
  };
  let summaryAt = 0;
  const loadSummary = async (view) => {
    if (!view.counts.accepted || Date.now() - summaryAt < 4000) return;
    summaryAt = Date.now();
    try {
      put(results, ...resultsCards(await api(`${path}/summary`)));
    } catch (error) {
      showError(results, error);
    }
  };
  const rateSeries = {}; // this job's parts/s per operator, one point per view (the view's 10 s rate)
  const drawRates = (view) => {
    if (view.ended && !Object.keys(rateSeries).length) return;
    for (const [op, rate] of Object.entries(view.rates.operators || {})) {
      (rateSeries[op] = rateSeries[op] || []).push(rate);
      if (rateSeries[op].length > 120) rateSeries[op].shift();
    }
    put(chart, h("h2", {}, t("job.rate_ops")), lineChart(rateSeries, { unit: "/s", label: t("job.rate_ops") }),
      h("p", { class: "muted" }, Object.entries(view.rates.operators || {}).map(([op, r]) => `${op}: ${num(r)}/s`).join(" · ")));
  };
  const controller = new AbortController();
  onLeave(() => controller.abort());
  const follow = async () => {
    try {
      await events(`${path}/events?interval=1`, (name, view) => {
        show(view);
        drawRates(view);
        if (name === "end") {
          summaryAt = 0; // the final figures, however recent the last read
          loadSummary(view);
        }
      }, controller.signal);
    } catch (error) {
      if (controller.signal.aborted) return;
      showError(live, error);
      if (error.status !== 404) setTimeout(follow, 3000); // a restart of the API: follow again
    }
  };
  follow();
  // While paused the stream goes on; the end event stops it, but a resume after it needs a look.
  const poll = setInterval(async () => {
    if (lastEnded) return;
    try { show(await api(path)); } catch (error) { /* the stream shows errors */ }
  }, 5000);
  onLeave(() => clearInterval(poll));
}

function operatorsPage(app) {
  const chart = h("div", { class: "card" });
  const list = h("div");
  put(app, h("h1", {}, t("ops.title")), chart, list);
  throughputSampler((series, operators, bindRates) => {
    put(chart, h("h2", {}, t("job.throughput")), lineChart(series, { unit: "/s", label: t("job.throughput") }));
    const rates = Object.fromEntries(Object.entries(series).map(([op, s]) => [op, s.length ? s[s.length - 1] : 0]));
    put(list, ...operators.map((o) => h("div", { class: "card", "data-operator": o.name },
      h("h2", {}, o.name, " ", badge(o.state), " ", h("span", { class: "muted" },
        `${t("col.tps")} ${num(o.tps)} · ${t("col.price")} ${o.price_per_part} · ${t("col.rate")} ${num(Math.round(rates[o.name] || 0))}/s`)),
      o.reason ? h("p", { class: "muted" }, o.reason) : null,
      table([t("col.bind"), t("col.state"), t("col.node"), t("col.window"), t("col.rate"), t("col.tps"), t("col.learned"),
        t("col.submitted"), t("col.throttled"), t("col.reconnects"), t("col.last_error")],
      o.binds.map((b) => [b.bind, badge(b.state), b.node_ip || "", `${b.in_flight} / ${b.window}`,
        `${num(Math.round(bindRates[`${o.name}/${b.bind}`] || 0))}/s`, b.tps === null ? t("none") : num(b.tps),
        b.learned_tps === null || b.learned_tps === undefined ? "" : `${num(b.learned_tps)}/s`,
        num(b.submitted), num(b.throttled), num(Math.max(0, b.connects - 1)), b.last_error || ""]), [3, 4, 5, 6, 7, 8, 9]))));
  });
}

function listsPage(app) {
  const brand = h("input", { type: "text", id: "l-brand", placeholder: "" });
  const numbers = h("textarea", { id: "l-numbers" });
  const optouts = h("div", { id: "optouts" });
  const consents = h("div", { id: "consents" });
  const lookup = h("input", { type: "text", id: "l-lookup", placeholder: "+90 5xx xxx xx xx" });
  const lookupOut = h("div");
  const query = () => (brand.value.trim() ? `?brand=${encodeURIComponent(brand.value.trim())}` : "");
  const draw = async () => {
    try {
      const [page, counts] = await Promise.all([api(`/v1/optouts${query()}`), api(`/v1/consents${query()}`)]);
      put(optouts, h("p", {}, `${t("lists.total")}: `, h("b", { id: "optout-total" }, num(page.total))),
        table([t("col.number"), t("col.source"), t("col.at"), ""], page.items.slice(0, 200).map((e) => [e.number, e.source,
          when(e.at ? new Date(e.at * 1000).toISOString() : null),
          writable() ? h("button", { type: "button", class: "link", onclick: () => remove(e.number) }, t("lists.remove")) : ""])));
      put(consents, table(Object.keys(counts).filter((k) => k !== "brand"),
        [Object.entries(counts).filter(([k]) => k !== "brand").map(([, v]) => num(v))]));
    } catch (error) {
      showError(optouts, error);
    }
  };
  const remove = async (number) => {
    try {
      await api(`/v1/optouts/${encodeURIComponent(number)}${query()}`, { method: "DELETE" });
      await draw();
    } catch (error) {
      showError(optouts, error);
    }
  };
  const add = async () => {
    const list = numbers.value.split(/[\s,;]+/).filter(Boolean);
    if (!list.length) return;
    try {
      await api("/v1/optouts", { method: "POST", body: { numbers: list, brand: brand.value.trim() || null, source: "api", detail: "web" } });
      numbers.value = "";
      await draw();
    } catch (error) {
      showError(optouts, error);
    }
  };
  const look = async () => {
    try {
      const entry = await api(`/v1/consents/${encodeURIComponent(lookup.value.trim())}${query()}`);
      put(lookupOut, table(Object.keys(entry), [Object.values(entry).map(String)]));
    } catch (error) {
      showError(lookupOut, error);
    }
  };
  brand.addEventListener("change", draw);
  put(app, h("h1", {}, t("lists.title")),
    h("div", { class: "card" }, h("label", { for: "l-brand" }, t("lists.brand")), brand),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("h2", {}, t("lists.optouts")),
        ...(writable() ? [h("label", { for: "l-numbers" }, t("lists.numbers")), numbers] : []),
        h("div", { class: "actions" }, writable() ? h("button", { type: "button", id: "l-add", onclick: add }, t("lists.add")) : null,
          h("button", { type: "button", class: "secondary", onclick: () => download(`/v1/optouts.iys.csv${query()}`, "iys-ret.csv") }, t("lists.export"))),
        optouts),
      h("div", { class: "card" }, h("h2", {}, t("lists.consents")), consents,
        h("label", { for: "l-lookup" }, t("lists.lookup")), lookup,
        h("div", { class: "actions" }, h("button", { type: "button", class: "secondary", onclick: look }, t("lists.lookup"))),
        lookupOut)));
  draw();
}

const REPLY_KINDS = ["optout", "optin", "keyword", "answer", "reply"];

function repliesPage(app) {
  const kind = h("select", { id: "r-kind" }, h("option", { value: "" }, t("replies.all")),
    ...REPLY_KINDS.map((k) => h("option", { value: k }, t(`kind.${k}`))));
  const out = h("div", { id: "replies" });
  const listName = h("input", { type: "text", id: "r-list", placeholder: "vip" });
  const listBrand = h("input", { type: "text", id: "r-list-brand" });
  const listOut = h("div", { id: "r-list-out" });
  const draw = async () => {
    try {
      const page = await api(`/v1/replies?limit=200${kind.value ? `&kind=${kind.value}` : ""}`);
      put(out, h("p", { class: "muted" }, `${t("replies.counts")}: `,
        ...REPLY_KINDS.map((k) => `${t(`kind.${k}`)} ${num(page.counts[k] || 0)}`).join(" · ")),
        table([t("col.at"), t("col.from"), t("col.to"), t("replies.kind"), t("col.keyword"), t("col.text")],
          page.items.map((r) => [when(new Date(r.received * 1000).toISOString()), `+${r.number}`, r.to,
            t(`kind.${r.kind}`), r.keyword || "", r.text])));
    } catch (error) {
      showError(out, error);
    }
  };
  const showList = async () => {
    const name = listName.value.trim();
    if (!name) return;
    const brand = listBrand.value.trim();
    try {
      const page = await api(`/v1/replies/lists/${encodeURIComponent(name)}${brand ? `?brand=${encodeURIComponent(brand)}` : ""}`);
      put(listOut, h("p", {}, `${t("lists.total")}: `, h("b", { id: "r-list-total" }, num(page.total))),
        table([t("col.number")], page.items.slice(0, 500).map((n) => [n])));
    } catch (error) {
      showError(listOut, error);
    }
  };
  kind.addEventListener("change", draw);
  put(app, h("h1", {}, t("replies.title")),
    h("div", { class: "card" }, h("label", { for: "r-kind" }, t("replies.kind")), kind, out),
    h("div", { class: "card" }, h("h2", {}, t("replies.list")),
      h("div", { class: "row" },
        h("div", {}, h("label", { for: "r-list" }, t("replies.list_name")), listName),
        h("div", {}, h("label", { for: "r-list-brand" }, t("lists.brand")), listBrand)),
      h("div", { class: "actions" }, h("button", { type: "button", id: "r-list-show", onclick: showList }, t("replies.show"))),
      listOut));
  draw();
  const timer = setInterval(draw, 5000);
  onLeave(() => clearInterval(timer));
}

document.getElementById("lang").addEventListener("click", () => {
  lang = lang === "tr" ? "en" : "tr";
  localStorage.setItem("ulak.lang", lang);
  route();
});
document.getElementById("signout").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
route();
