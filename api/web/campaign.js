// Ulak web manager: the new-campaign form (every option of POST /v1/jobs), its preview, and the
// API's validation errors shown next to the field they name. Loaded before app.js, whose helpers
// (h, put, t, num, api, table, kpi, ...) it uses.
"use strict";

const SURVEY_ANSWERS = { yes_no: ["yes", "no"], nps: ["promoter", "passive", "detractor"] };

// One labelled field: <div data-field=name><label/>input<p error/></div>. *hint* goes under the label.
function fieldBox(name, label, input, hint) {
  input.id = input.id || `f-${name}`;
  return h("div", { class: "field", "data-field": name }, h("label", { for: input.id }, label),
    hint ? h("p", { class: "muted hint", id: `${input.id}-hint` }, hint) : null, input);
}

const textInput = (name, extra = {}) => h("input", { type: "text", id: `f-${name}`, name, ...extra });
const numberInput = (name, extra = {}) => h("input", { type: "number", id: `f-${name}`, name, ...extra });

function select(name, options, extra = {}) {
  return h("select", { id: `f-${name}`, name, ...extra }, options.map(([value, label]) => h("option", { value }, label)));
}

let variantSeq = 0; // ids stay unique as variants are added and removed

function variantRow(index) {
  const n = variantSeq++;
  const row = h("fieldset", { class: "variant" },
    h("legend", {}, `${t("ab.variant")} ${index + 1}`),
    h("div", { class: "row" },
      fieldBox(`v${n}-name`, t("ab.name"), h("input", { type: "text", class: "v-name", maxlength: 20, value: String.fromCharCode(65 + index) })),
      fieldBox(`v${n}-sender`, t("new.sender"), h("input", { type: "text", class: "v-sender", maxlength: 11 })),
      fieldBox(`v${n}-weight`, t("ab.weight"), h("input", { type: "number", class: "v-weight", min: "0.01", step: "any", value: "1" })),
      fieldBox(`v${n}-send_at`, t("ab.send_at"), h("input", { type: "datetime-local", class: "v-send-at" }))),
    fieldBox(`v${n}-template`, t("ab.template"), h("textarea", { class: "v-template" })),
    h("button", { type: "button", class: "secondary v-remove", onclick: () => { row.remove(); renumber(); } }, t("ab.remove")));
  return row;
}

function renumber() {
  document.querySelectorAll("#variants fieldset.variant").forEach((row, i) => {
    row.querySelector("legend").textContent = `${t("ab.variant")} ${i + 1}`;
  });
}

function followupBoxes(kind) {
  return (SURVEY_ANSWERS[kind] || []).map((answer) =>
    fieldBox(`followup-${answer}`, `${t("survey.followup")}: ${t(`survey.${answer}`)}`, h("input", { type: "text", "data-answer": answer, class: "followup" })));
}

function campaignForm() {
  const variants = h("div", { id: "variants", "data-field": "variants" });
  const followups = h("div", { id: "followups" });
  const surveyKind = select("survey", [["", t("survey.none")], ["yes_no", t("survey.yes_no")], ["nps", t("survey.nps")]]);
  surveyKind.addEventListener("change", () => put(followups, followupBoxes(surveyKind.value)));
  const section = (id, title, ...children) => h("details", { class: "card", id }, h("summary", {}, h("h2", {}, title)), ...children);
  return h("form", { id: "campaign", novalidate: true },
    h("div", { class: "card" },
      fieldBox("file", t("new.file"), h("input", { type: "file", name: "file", required: true, accept: ".csv,.txt,.xlsx,.xls,.ods,.parquet" })),
      fieldBox("template", t("new.template"), h("textarea", { name: "template", "aria-describedby": "f-template-hint" }), t("new.template.hint")),
      h("div", { class: "row" },
        fieldBox("name", t("new.name"), textInput("name", { maxlength: 200 })),
        fieldBox("sender", t("new.sender"), textInput("sender", { maxlength: 16 })),
        fieldBox("brand", t("new.brand"), textInput("brand"))),
      h("div", { class: "row" },
        h("div", { class: "field", "data-field": "category" },
          h("label", { class: "check" }, h("input", { type: "checkbox", name: "commercial", id: "f-commercial" }), " ", t("new.commercial"))),
        fieldBox("frequency_cap", t("new.frequency_cap"), select("frequency_cap",
          [["", t("cap.default")], ["defer", t("cap.defer")], ["refuse", t("cap.refuse")], ["off", t("cap.off")]])))),
    section("s-schedule", t("new.schedule"),
      h("div", { class: "row" },
        fieldBox("send_at", t("new.send_at"), h("input", { type: "datetime-local", name: "send_at" }), t("new.send_at.hint")),
        fieldBox("send_window", t("new.window"), textInput("send_window", { placeholder: "09:00-20:00" })),
        fieldBox("window_timezone", t("new.window_timezone"), textInput("window_timezone", { placeholder: "Europe/Istanbul", list: "zones" })),
        fieldBox("validity_minutes", t("new.validity"), numberInput("validity_minutes", { min: 1 }))),
      h("datalist", { id: "zones" }, ["Europe/Istanbul", "recipient", "UTC", "Europe/Berlin", "Asia/Baku"].map((z) => h("option", { value: z }))),
      h("div", { class: "field", "data-field": "send_time" },
        h("label", { class: "check" }, h("input", { type: "checkbox", name: "optimized", id: "f-optimized" }), " ", t("new.optimized"))),
      h("div", { class: "row" },
        fieldBox("send_time_horizon_hours", t("new.horizon"), numberInput("send_time_horizon_hours", { min: 1, max: 72, placeholder: "24" })),
        fieldBox("send_time_control", t("new.control"), numberInput("send_time_control", { min: 1, max: 50, step: "any", placeholder: "10" })))),
    section("s-link", t("new.link_section"),
      h("div", { class: "row" },
        fieldBox("link_url", t("new.link"), textInput("link_url", { placeholder: "https://" })),
        fieldBox("utm", t("new.utm"), textInput("utm", { placeholder: "utm_source=sms&utm_campaign=kasim" }))),
      h("div", { class: "row" },
        fieldBox("goal_conversions", t("new.goal_conversions"), numberInput("goal_conversions", { min: 1 })),
        fieldBox("goal_value", t("new.goal_value"), numberInput("goal_value", { min: 0, step: "any" })))),
    section("s-advanced", t("new.advanced"),
      h("div", { class: "row" },
        fieldBox("phone_column", t("adv.phone_column"), textInput("phone_column"), t("adv.detected")),
        fieldBox("text_column", t("adv.text_column"), textInput("text_column"), t("adv.text_column.hint")),
        fieldBox("sheet", t("adv.sheet"), textInput("sheet")),
        fieldBox("encoding", t("adv.encoding"), textInput("encoding", { placeholder: "auto", list: "encodings" }))),
      h("datalist", { id: "encodings" }, ["auto", "utf-8", "cp1254", "iso-8859-9", "utf-16"].map((e) => h("option", { value: e }))),
      h("div", { class: "row" },
        fieldBox("operators", t("adv.operators"), textInput("operators", { placeholder: "tcell, voda" })),
        fieldBox("weight", t("adv.weight"), numberInput("weight", { min: 0.01, step: "any", placeholder: "1" })),
        fieldBox("split_seed", t("adv.split_seed"), textInput("split_seed"))),
      h("div", { class: "row" },
        fieldBox("click_window_days", t("adv.click_window"), numberInput("click_window_days", { min: 0, step: "any" })),
        fieldBox("delivery_window_days", t("adv.delivery_window"), numberInput("delivery_window_days", { min: 0, step: "any" })),
        fieldBox("webhook_url", t("adv.webhook"), textInput("webhook_url", { placeholder: "https://" })))),
    section("s-ab", t("new.ab"),
      h("p", { class: "muted" }, t("ab.hint")),
      variants,
      h("div", { class: "actions" }, h("button", { type: "button", class: "secondary", id: "add-variant",
        onclick: () => { variants.append(variantRow(variants.children.length)); renumber(); } }, t("ab.add"))),
      h("div", { class: "row" },
        fieldBox("holdout", t("ab.holdout"), numberInput("holdout", { min: 0, max: 50, step: "any" })),
        fieldBox("test_share", t("ab.test_share"), numberInput("test_share", { min: 1, max: 100, step: "any" })),
        fieldBox("decide_after_minutes", t("ab.decide_after"), numberInput("decide_after_minutes", { min: 1, placeholder: "60" })),
        fieldBox("winner_by", t("ab.winner_by"), select("winner_by", [["clicks", t("k.click_rate")], ["conversions", t("k.conversion_rate")]])))),
    section("s-survey", t("new.survey"),
      h("div", { class: "row" },
        fieldBox("survey", t("survey.kind"), surveyKind),
        fieldBox("survey_reply_to", t("survey.reply_to"), textInput("survey_reply_to", { maxlength: 21 })),
        fieldBox("survey_window_hours", t("survey.window"), numberInput("survey_window_hours", { min: 1, placeholder: "72" }))),
      followups));
}

const value = (form, id) => (form.querySelector(`#${id}`)?.value || "").trim();
const percentValue = (text) => String(Number(text) / 100);
// A datetime-local (the browser's zone) as ISO 8601 with its offset, as the API asks.
const isoOf = (local) => (local ? new Date(local).toISOString() : "");

// The form as POST /v1/jobs takes it: empty fields left out (the API's defaults apply).
function formData(form, dryRun) {
  const data = new FormData();
  const file = form.querySelector("#f-file").files[0];
  if (file) data.append("file", file);
  const plain = ["template", "name", "sender", "brand", "frequency_cap", "send_window", "window_timezone", "validity_minutes",
    "send_time_horizon_hours", "link_url", "utm", "goal_conversions", "goal_value", "decide_after_minutes",
    "phone_column", "text_column", "sheet", "encoding", "operators", "weight", "split_seed", "click_window_days",
    "delivery_window_days", "webhook_url"];
  for (const name of plain) if (value(form, `f-${name}`)) data.append(name, value(form, `f-${name}`));
  if (value(form, "f-send_at")) data.append("send_at", isoOf(value(form, "f-send_at")));
  if (value(form, "f-send_time_control")) data.append("send_time_control", percentValue(value(form, "f-send_time_control")));
  if (value(form, "f-holdout")) data.append("holdout", percentValue(value(form, "f-holdout")));
  if (value(form, "f-test_share")) data.append("test_share", percentValue(value(form, "f-test_share")));
  if (form.querySelector("#f-commercial").checked) data.append("category", "commercial");
  if (form.querySelector("#f-optimized").checked) data.append("send_time", "optimized");
  const rows = [...form.querySelectorAll("#variants fieldset.variant")];
  if (rows.length) {
    data.append("winner_by", value(form, "f-winner_by"));
    data.append("variants", JSON.stringify(rows.map((row) => {
      const v = { name: row.querySelector(".v-name").value.trim(), weight: Number(row.querySelector(".v-weight").value || 1) };
      const template = row.querySelector(".v-template").value.trim();
      const sender = row.querySelector(".v-sender").value.trim();
      const at = row.querySelector(".v-send-at").value;
      if (template) v.template = template;
      if (sender) v.sender = sender;
      if (at) v.send_at = isoOf(at);
      return v;
    })));
  }
  const kind = value(form, "f-survey");
  if (kind) {
    const survey = { kind };
    if (value(form, "f-survey_reply_to")) survey.reply_to = value(form, "f-survey_reply_to");
    if (value(form, "f-survey_window_hours")) survey.window_hours = Number(value(form, "f-survey_window_hours"));
    const followups = {};
    for (const input of form.querySelectorAll("#followups input.followup")) if (input.value.trim()) followups[input.dataset.answer] = input.value.trim();
    if (Object.keys(followups).length) survey.followups = followups;
    data.append("survey", JSON.stringify(survey));
  }
  if (dryRun) data.append("dry_run", "true");
  return data;
}

function clearFieldErrors(form) {
  for (const el of form.querySelectorAll(".field-error")) el.remove();
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

// The API's error next to the field it names ("variants.1.name" → that variant's name; "survey.x"
// → the survey's box), opening its section; true when a field was found.
function showFieldError(form, error) {
  const field = error.body && error.body.field;
  if (!field) return false;
  const parts = field.split(".");
  let box = null;
  if (parts[0] === "variants" && parts.length > 1 && /^\d+$/.test(parts[1])) {
    const row = form.querySelectorAll("#variants fieldset.variant")[Number(parts[1])];
    const input = row && row.querySelector(`.v-${(parts[2] || "name").replace("_", "-")}`);
    box = input ? input.closest(".field") : null;
  }
  if (!box && parts[0] === "survey" && parts[1]) box = form.querySelector(`[data-field='survey_${parts[1]}']`);
  if (!box) box = form.querySelector(`[data-field='${parts[0]}']`);
  if (!box && parts[0] === "variants") box = form.querySelector("#variants");
  if (!box) return false;
  const details = box.closest("details");
  if (details) details.open = true;
  const input = box.querySelector("input, textarea, select");
  const id = `err-${field.replace(/[^A-Za-z0-9_-]/g, "-")}`;
  box.append(h("p", { class: "error field-error", role: "alert", id }, error.message));
  if (input) {
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", id);
    input.focus();
  }
  return true;
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
  const failed = (error) => {
    if (!showFieldError(form, error)) showError(out, error);
    else put(out);
  };
  previewButton.addEventListener("click", async () => {
    clearFieldErrors(form);
    if (!form.reportValidity()) return;
    confirmButton.disabled = true;
    put(out, h("p", { class: "muted" }, t("new.previewing")));
    try {
      const created = await api("/v1/jobs", { method: "POST", body: formData(form, true) });
      const [view, operators] = await Promise.all([waitForEnd(created.id), api("/v1/operators")]);
      if (view.state !== "done") throw new ApiError(422, view.error || { message: view.state });
      put(out, previewCard(view, operators));
      confirmButton.disabled = view.counts.accepted === 0;
    } catch (error) {
      failed(error);
    }
  });
  confirmButton.addEventListener("click", async () => {
    confirmButton.disabled = true;
    clearFieldErrors(form);
    try {
      const created = await api("/v1/jobs", { method: "POST", body: formData(form, false) });
      location.hash = `#/job/${encodeURIComponent(created.id)}`;
    } catch (error) {
      confirmButton.disabled = false;
      failed(error);
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
  const variants = Object.entries(view.variants || {});
  const sum = (byOp, key) => Object.values(byOp).reduce((s, v) => s + v[key], 0);
  const variantCost = (byOp) => Object.entries(byOp).reduce((s, [op, v]) => s + cost(op, v.parts), 0);
  return h("div", { class: "card", id: "preview-card", "data-job": view.id },
    h("h2", {}, t("preview.title")),
    h("div", { class: "kpis" },
      kpi(t("preview.rows"), h("span", { id: "pv-rows" }, num(c.rows))),
      kpi(t("preview.accepted"), h("span", { id: "pv-accepted" }, num(c.accepted))),
      kpi(t("preview.rejected"), h("span", { id: "pv-rejected" }, num(c.rejected))),
      c.held_out ? kpi(t("preview.held_out"), h("span", { id: "pv-held-out" }, num(c.held_out))) : null,
      kpi(t("preview.parts"), h("span", { id: "pv-parts" }, num(view.parts.total))),
      kpi(t("preview.cost"), h("span", { id: "pv-cost" }, money(total)))),
    variants.length ? h("div", { id: "pv-variants" }, h("h2", { style: "margin-top:1rem" }, t("preview.variants")),
      table([t("k.variant"), t("col.messages"), t("col.parts"), t("col.cost")],
        variants.map(([name, byOp]) => [name === "rest" ? t("preview.rest") : name, num(sum(byOp, "messages")), num(sum(byOp, "parts")), money(variantCost(byOp))]), [1, 2, 3]))
      : null,
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
