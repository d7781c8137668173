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
    "job.pause": "Duraklat", "job.resume": "Sürdür", "job.cancel": "İptal et", "job.progress": "İlerleme",
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
    "job.pause": "Pause", "job.resume": "Resume", "job.cancel": "Cancel", "job.progress": "Progress",
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
    "yes": "yes", "no": "no", "none": "—", "loading": "Loading…", "error.signin": "The key is not valid.",
  },
};

let lang = localStorage.getItem("ulak.lang") || "tr";
const t = (key) => (I18N[lang] && I18N[lang][key]) || I18N.en[key] || key;
const locale = () => (lang === "tr" ? "tr-TR" : "en-GB");
const num = (n) => (n === null || n === undefined ? t("none") : Number(n).toLocaleString(locale()));
const pct = (r) => (r === null || r === undefined ? t("none") : (r * 100).toLocaleString(locale(), { maximumFractionDigits: 1 }) + " %");
const when = (iso) => (iso ? new Date(iso).toLocaleString(locale()) : t("none"));
const COLORS = ["#0b6bcb", "#e8710a", "#1a7f37", "#9334e6", "#c62828", "#00838f"];

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

// el.replaceChildren, leaving out the absent (null: a section whose feature is off).
function put(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children.flat()) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function table(headers, rows, numeric = []) {
  return h("div", { class: "scroll" }, h("table", {},
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
  const pages = { jobs: jobsPage, new: newPage, job: jobPage, operators: operatorsPage, lists: listsPage, replies: repliesPage };
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
  return h("div", { class: "progress", role: "progressbar", "aria-valuenow": p, "aria-valuemin": 0, "aria-valuemax": 100 },
    h("div", { style: `width:${p}%` }), h("span", {}, `${p.toLocaleString(locale())} %`));
}

async function jobsPage(app) {
  put(app, h("h1", {}, t("jobs.title")), h("p", { class: "muted" }, t("loading")));
  const draw = async () => {
    try {
      const { jobs } = await api("/v1/jobs?limit=50");
      const rows = jobs.map((j) => [
        h("a", { href: `#/job/${encodeURIComponent(j.id)}` }, j.options.name || j.id),
        stateBadge(j.state),
        when(j.times.created),
        num(j.counts.accepted),
        pct(j.delivery_rate),
        progressBar(progressOf(j)),
      ]);
      put(app, h("h1", {}, t("jobs.title")),
        h("div", { class: "card" }, jobs.length ? table(
          [t("col.job"), t("col.state"), t("col.created"), t("col.accepted"), t("col.delivered"), t("col.progress")],
          rows, [3, 4]) : h("p", {}, t("jobs.empty"))));
    } catch (error) {
      showError(app, error);
    }
  };
  await draw();
  const timer = setInterval(draw, 5000);
  onLeave(() => clearInterval(timer));
}

function campaignForm() {
  const field = (name, label, input) => [h("label", { for: `f-${name}` }, label), input];
  const text = (name, extra = {}) => h("input", { type: "text", id: `f-${name}`, name, ...extra });
  return h("form", { class: "card", id: "campaign" },
    ...field("file", t("new.file"), h("input", { type: "file", id: "f-file", name: "file", required: true,
      accept: ".csv,.txt,.xlsx,.xls,.ods,.parquet" })),
    ...field("template", t("new.template"), h("textarea", { id: "f-template", name: "template", required: true })),
    h("p", { class: "muted" }, t("new.template.hint")),
    h("div", { class: "row" },
      h("div", {}, ...field("name", t("new.name"), text("name", { maxlength: 200 }))),
      h("div", {}, ...field("sender", t("new.sender"), text("sender", { maxlength: 16 }))),
      h("div", {}, ...field("send_window", t("new.window"), text("send_window", { placeholder: "09:00-20:00" })))),
    h("div", { class: "row" },
      h("div", {}, ...field("link_url", t("new.link"), text("link_url", { placeholder: "https://" }))),
      h("div", {}, ...field("brand", t("new.brand"), text("brand")))),
    h("label", {}, h("input", { type: "checkbox", name: "commercial", id: "f-commercial" }), " ", t("new.commercial")),
    h("label", {}, h("input", { type: "checkbox", name: "optimized", id: "f-optimized" }), " ", t("new.optimized")));
}

function formData(form, dryRun) {
  const data = new FormData();
  for (const [name, value] of new FormData(form).entries()) {
    if (name === "commercial" || name === "optimized") continue;
    if (value instanceof File || String(value).trim() !== "") data.append(name, value);
  }
  if (form.elements.commercial.checked) data.append("category", "commercial");
  if (form.elements.optimized.checked) data.append("send_time", "optimized");
  if (dryRun) data.append("dry_run", "true");
  return data;
}

async function waitForEnd(jobId) {
  for (;;) {
    const view = await api(`/v1/jobs/${encodeURIComponent(jobId)}`);
    if (view.ended) return view;
    await new Promise((r) => setTimeout(r, 500));
  }
}

function newPage(app) {
  if (!writable()) return put(app, h("h1", {}, t("new.title")), h("p", { class: "muted", id: "read-only" }, t("key.read_only")));
  const form = campaignForm();
  const out = h("div", { id: "preview" });
  const previewButton = h("button", { type: "button", id: "preview-button" }, t("new.preview"));
  const confirmButton = h("button", { type: "button", id: "confirm-button", disabled: true }, t("new.confirm"));
  previewButton.addEventListener("click", async () => {
    if (!form.reportValidity()) return;
    confirmButton.disabled = true;
    put(out, h("p", { class: "muted" }, t("new.previewing")));
    try {
      const created = await api("/v1/jobs", { method: "POST", body: formData(form, true) });
      const [view, operators] = await Promise.all([waitForEnd(created.id), api("/v1/operators")]);
      if (view.state !== "done") throw new Error((view.error && view.error.message) || view.state);
      put(out, previewCard(view, operators));
      confirmButton.disabled = view.counts.accepted === 0;
    } catch (error) {
      showError(out, error);
    }
  });
  confirmButton.addEventListener("click", async () => {
    confirmButton.disabled = true;
    try {
      const created = await api("/v1/jobs", { method: "POST", body: formData(form, false) });
      location.hash = `#/job/${encodeURIComponent(created.id)}`;
    } catch (error) {
      confirmButton.disabled = false;
      showError(out, error);
    }
  });
  form.addEventListener("input", () => { confirmButton.disabled = true; });
  put(app, h("h1", {}, t("new.title")), form, h("div", { class: "actions" }, previewButton, confirmButton), out);
}

function previewCard(view, operators) {
  const prices = Object.fromEntries(operators.map((o) => [o.name, Number(o.price_per_part)]));
  const ops = Object.entries(view.operators);
  const cost = (op, parts) => parts * (prices[op] || 0);
  const total = ops.reduce((s, [op, v]) => s + cost(op, v.parts), 0);
  const money = (x) => x.toLocaleString(locale(), { minimumFractionDigits: 2, maximumFractionDigits: 4 });
  const c = view.counts;
  return h("div", { class: "card", id: "preview-card", "data-job": view.id },
    h("h2", {}, t("preview.title")),
    h("div", { class: "kpis" },
      kpi(t("preview.rows"), h("span", { id: "pv-rows" }, num(c.rows))),
      kpi(t("preview.accepted"), h("span", { id: "pv-accepted" }, num(c.accepted))),
      kpi(t("preview.rejected"), h("span", { id: "pv-rejected" }, num(c.rejected))),
      c.held_out ? kpi(t("preview.held_out"), num(c.held_out)) : null,
      kpi(t("preview.parts"), h("span", { id: "pv-parts" }, num(view.parts.total))),
      kpi(t("preview.cost"), h("span", { id: "pv-cost" }, money(total)))),
    h("div", { class: "grid", style: "margin-top:1rem" },
      h("div", {}, h("h2", {}, t("preview.operators")),
        table([t("col.operator"), t("col.messages"), t("col.parts"), t("col.cost")],
          ops.map(([op, v]) => [op, num(v.messages), num(v.parts), money(cost(op, v.parts))]), [1, 2, 3])),
      h("div", {}, h("h2", {}, t("preview.reasons")),
        Object.keys(view.rejected_reasons).length
          ? table([t("col.reason"), t("col.count")], Object.entries(view.rejected_reasons).map(([r, n]) => [r, num(n)]), [1])
          : h("p", { class: "muted" }, t("none")),
        c.rejected ? h("button", { type: "button", class: "secondary",
          onclick: () => download(`/v1/jobs/${view.id}/rejected`, `${view.id}-rejected.csv`) }, t("job.rejected")) : null)),
    view.send_plan ? h("div", { id: "pv-plan" }, h("h2", { style: "margin-top:1rem" }, t("preview.plan")),
      table([t("col.hour"), t("col.optimized"), t("col.control")],
        view.send_plan.hours.filter((x) => x.optimized + x.control).map((x) => [
          new Date(x.hour).toLocaleString(locale(), { weekday: "short", hour: "2-digit", minute: "2-digit" }),
          num(x.optimized), num(x.control)]), [1, 2])) : null,
    h("h2", { style: "margin-top:1rem" }, t("preview.samples")),
    table([t("col.number"), t("col.operator"), t("col.text"), t("col.encoding"), t("col.parts")],
      view.samples.map((s) => [s.msisdn, s.operator, h("pre", { class: "msg" }, s.text), s.encoding, num(s.parts)]), [4]));
}

function lineChart(series, { height = 200, unit = "" } = {}) {
  const names = Object.keys(series);
  const points = Math.max(2, ...names.map((n) => series[n].length));
  const max = Math.max(1, ...names.flatMap((n) => series[n]));
  const w = 600, pad = 30;
  const x = (i) => pad + (i * (w - pad - 5)) / (points - 1);
  const y = (v) => height - 18 - (v / max) * (height - 28);
  const chart = svg("svg", { class: "chart", viewBox: `0 0 ${w} ${height}`, preserveAspectRatio: "none", role: "img" },
    svg("line", { x1: pad, y1: y(0), x2: w - 5, y2: y(0), stroke: "#dde1e8" }),
    svg("text", { x: 2, y: y(max) + 4 }, Math.round(max).toLocaleString(locale()) + unit),
    svg("text", { x: 2, y: y(0) + 4 }, "0"),
    names.map((n, k) => svg("polyline", {
      fill: "none", stroke: COLORS[k % COLORS.length], "stroke-width": 2,
      points: series[n].map((v, i) => `${x(i)},${y(v)}`).join(" "),
    })));
  const legend = h("div", { class: "legend" }, names.map((n, k) => h("span", {}, h("i", { style: `background:${COLORS[k % COLORS.length]}` }), n)));
  return h("div", {}, chart, legend);
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
  if (s.nps && s.nps.distribution) {
    const dist = s.nps.distribution;
    const top = Math.max(1, ...Object.values(dist));
    parts.push(table(["", "", ""], Object.entries(dist).map(([score, n]) => [score,
      h("div", { class: "bar", style: `width:${(100 * n) / top}%;background:${score >= 9 ? "#1a7f37" : score >= 7 ? "#b35900" : "#c62828"}` }),
      num(n)]), [2]));
  }
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
    verdict(ab.clicks, t("k.click_rate")), verdict(ab.conversions, t("k.conversion_rate")));
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
  if (summary.survey) cards.push(surveyCard(summary.survey));
  if (summary.ab_test) cards.push(abCard(summary));
  return cards;
}

function jobPage(app, jobId) {
  const path = `/v1/jobs/${encodeURIComponent(jobId)}`;
  const head = h("div");
  const live = h("div", { class: "card" });
  const chart = h("div", { class: "card" }, h("h2", {}, t("job.throughput")));
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
        h("button", { type: "button", id: "cancel", class: "danger", disabled: !may("cancel"), onclick: act("cancel") }, t("job.cancel")))
        : h("p", { class: "muted", id: "read-only" }, t("key.read_only")));
    const c = view.counts;
    const eta = view.eta_seconds === null ? t("none") : `${Math.ceil(view.eta_seconds).toLocaleString(locale())} s`;
    put(live, h("h2", {}, t("job.progress")), h("div", { id: "progress" }, progressBar(progressOf(view))),
      h("div", { class: "kpis", style: "margin-top:.8rem" },
        kpi(t("job.rate"), `${num(view.rates.messages_per_second)} ${t("job.msgs")}`),
        kpi(t("job.rate"), `${num(view.rates.parts_per_second)} ${t("job.parts_s")}`),
        kpi(t("job.eta"), eta),
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
  throughputSampler((series) => put(chart, h("h2", {}, t("job.throughput")), lineChart(series, { unit: "/s" })));
  const controller = new AbortController();
  onLeave(() => controller.abort());
  const follow = async () => {
    try {
      await events(`${path}/events?interval=1`, (name, view) => {
        show(view);
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
    put(chart, h("h2", {}, t("job.throughput")), lineChart(series, { unit: "/s" }));
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
