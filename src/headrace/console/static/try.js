// The "Try a transformation" page (console/trying.py). Served by headrace itself: no CDN, no build step.
// It posts the page's form (with the session's CSRF token) to the console's JSON actions and shows the answer.
// Every value from the server is written with textContent: nothing it says is ever parsed as HTML.
"use strict";
(function () {
  const form = document.getElementById("try");
  if (!form) return;
  const root = form.dataset.root;
  const maxScript = Number(form.dataset.maxScript);
  const $ = (id) => document.getElementById(id);
  const destination = $("destination");
  const script = $("script");
  const eventType = $("event_type");
  const variant = $("variant");
  const eventId = $("event_id");
  let polling = null;

  function original() {
    return $("original-" + destination.selectedIndex).value;
  }

  function edited() {
    return script.value !== original();
  }

  function showScriptState() {
    const opt = destination.selectedOptions[0];
    const own = opt.dataset.transform;
    if (edited()) {
      $("script-state").textContent = "Your edited script (runs in the sandbox; nothing is saved).";
    } else if (own) {
      $("script-state").textContent = "The destination's own script: " + own + ".";
    } else {
      $("script-state").textContent =
        "This destination has no transformation: it sends the Dodo body as is. Edit the starter to try one.";
    }
    const size = new TextEncoder().encode(script.value).length;
    $("script-size").textContent = size.toLocaleString("en-US") + " of " + maxScript.toLocaleString("en-US") + " bytes";
    $("script-size").className = size > maxScript ? "error" : "muted";
    $("save-file").textContent = opt.dataset.saveFile;
    $("save-table").textContent = opt.dataset.saveTable;
    $("save-line").textContent = opt.dataset.saveLine;
    $("save-config").hidden = opt.dataset.saveChanges !== "yes";
  }

  function fillVariants() {
    const names = (eventType.selectedOptions[0].dataset.variants || "").split(",").filter(Boolean);
    variant.replaceChildren(new Option("plain sample", ""));
    for (const name of names) variant.add(new Option("variant: " + name, name));
    variant.disabled = names.length === 0;
  }

  function fields() {
    const data = new URLSearchParams();
    data.set("csrf", form.elements.csrf.value);
    data.set("destination", destination.value);
    if (edited()) data.set("script", script.value); // else the destination's own script, as deliveries run it
    if (form.elements.input.value === "event") {
      data.set("event_id", eventId.value.trim());
    } else {
      data.set("event_type", eventType.value);
      if (variant.value) data.set("variant", variant.value);
    }
    return data;
  }

  async function post(path, data) {
    const response = await fetch(root + path, {
      method: "POST",
      body: data,
      headers: { "Accept": "application/json" },
      credentials: "same-origin",
    });
    let answer;
    try {
      answer = await response.json();
    } catch (e) {
      answer = { error: "http_" + response.status, message: "HTTP " + response.status + " (not JSON)" };
    }
    return { status: response.status, answer: answer };
  }

  function cell(row, text, cls) {
    const td = row.insertCell();
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function badge(el, text, cls) {
    el.textContent = text;
    el.className = "badge " + (cls || "");
  }

  function pretty(value) {
    return JSON.stringify(value, null, 2);
  }

  function showRefusal(message) {
    $("result").hidden = false;
    badge($("verdict"), "not previewed", "failed");
    $("error-box").hidden = false;
    $("error-line").textContent = "";
    $("error-text").textContent = message;
    $("error-code").hidden = true;
    for (const id of ["headers", "diff", "schema-problems", "notes"]) $(id).replaceChildren();
    $("method").textContent = "";
    $("url").textContent = "";
    $("payload").textContent = "";
    $("schema-reason").textContent = "";
    badge($("schema-verdict"), "", "");
  }

  function show(a) {
    $("result").hidden = false;
    if (a.error) badge($("verdict"), a.error.line ? "error at line " + a.error.line : "refused", "failed");
    else if (a.cancel) badge($("verdict"), "cancelled by the script: nothing is sent", "cancelled");
    else badge($("verdict"), "would send", "delivered");
    $("error-box").hidden = !a.error;
    if (a.error) {
      $("error-line").textContent = a.error.line ? " at line " + a.error.line : "";
      $("error-text").textContent = a.error.message;
      const lines = (edited() || !destination.selectedOptions[0].dataset.transform ? script.value : original()).split("\n");
      const code = $("error-code");
      code.hidden = !a.error.line || a.error.line > lines.length;
      if (!code.hidden) code.textContent = a.error.line + " | " + lines[a.error.line - 1];
    }
    $("method").textContent = a.method;
    $("url").textContent = a.url;
    const headers = $("headers");
    headers.replaceChildren();
    for (const [name, value] of Object.entries(a.headers || {})) {
      const row = headers.insertRow();
      cell(row, name);
      cell(row, value);
    }
    const schema = a.schema;
    if (schema.checked) {
      const cls = schema.verdict === "fits" ? "delivered" : schema.verdict === "not sent" ? "failed" : "retry";
      badge($("schema-verdict"), schema.verdict + " (" + schema.target + ", schema = " + schema.mode + ")", cls);
      $("schema-reason").textContent = schema.problems.length ? "" : "The payload fits the target's input schema.";
    } else {
      badge($("schema-verdict"), "not checked", "cancelled");
      $("schema-reason").textContent = schema.reason;
    }
    const problems = $("schema-problems");
    problems.replaceChildren();
    for (const p of schema.problems) {
      const li = document.createElement("li");
      li.textContent = p.message;
      li.className = "error";
      problems.append(li);
    }
    const diff = $("diff");
    diff.replaceChildren();
    for (const d of a.diff) {
      const row = diff.insertRow();
      row.className = "diff-" + d.change;
      cell(row, d.key, "mono");
      cell(row, d.change);
      cell(row, d.before === undefined ? "" : d.before, "mono");
      cell(row, d.after === undefined ? "" : d.after, "mono");
    }
    if (!a.diff.length) {
      const row = diff.insertRow();
      cell(row, a.payload === null ? "no payload" : "no change: the Dodo body is sent as it came", "muted").colSpan = 4;
    }
    $("payload").textContent = a.payload === null ? "(none)" : pretty(a.payload);
    const notes = $("notes");
    notes.replaceChildren();
    for (const n of a.notes) {
      const li = document.createElement("li");
      li.textContent = n;
      notes.append(li);
    }
  }

  async function run() {
    $("run").disabled = true;
    try {
      const { status, answer } = await post("/try/preview", fields());
      if (status === 200) show(answer);
      else showRefusal(answer.message || "HTTP " + status);
    } catch (e) {
      showRefusal("headrace did not answer: " + e);
    } finally {
      $("run").disabled = false;
    }
  }

  function jobClass(state) {
    return { success: "delivered", failure: "failed", open: "pending" }[state] || "cancelled";
  }

  function showTest(t) {
    $("test").hidden = false;
    badge($("test-outcome"), t.outcome === "delivered" ? "sent" : t.outcome, t.outcome);
    $("test-job").textContent = t.job_id;
    const state = t.job ? t.job.state : "not created";
    badge($("test-state"), state === "open" ? "running…" : state, jobClass(t.job && t.job.state));
    const link = $("test-link");
    link.hidden = !(t.job && t.job.windmill_url);
    if (!link.hidden) link.href = t.job.windmill_url;
    const detail = (t.job && t.job.excerpt) || t.detail || "";
    $("test-detail").hidden = !detail;
    $("test-detail").textContent = detail;
  }

  function listTest(t) {
    const body = document.querySelector("#tests tbody");
    if (body.rows.length === 1 && body.rows[0].cells.length === 1) body.deleteRow(0);
    const row = body.insertRow(0);
    const when = cell(row, t.created_at + " ");
    const mark = document.createElement("span");
    badge(mark, "TEST", "test");
    when.append(mark);
    cell(row, t.destination);
    cell(row, t.input + (t.script ? " · " + t.script : ""));
    const outcome = cell(row, "");
    const b = document.createElement("span");
    badge(b, t.outcome, t.outcome);
    outcome.append(b);
    cell(row, t.job_id, "mono");
  }

  async function poll(id, until) {
    const response = await fetch(root + "/try/tests/" + id, { credentials: "same-origin" });
    const t = await response.json();
    if (!response.ok) return;
    showTest(t);
    if (t.job && t.job.state === "open" && Date.now() < until) {
      polling = setTimeout(() => poll(id, until), 1000);
    }
  }

  async function send() {
    if (polling) clearTimeout(polling);
    $("send").disabled = true;
    try {
      const { status, answer } = await post("/try/send", fields());
      if (status !== 201) {
        $("test").hidden = false;
        badge($("test-outcome"), "not sent", "failed");
        $("test-job").textContent = "—";
        badge($("test-state"), "", "");
        $("test-detail").hidden = false;
        $("test-detail").textContent = answer.message || "HTTP " + status;
        return;
      }
      showTest(answer);
      listTest(answer);
      if (answer.job && answer.job.state === "open") polling = setTimeout(() => poll(answer.id, Date.now() + 120000), 500);
    } finally {
      $("send").disabled = false;
    }
  }

  destination.addEventListener("change", () => {
    script.value = original();
    showScriptState();
  });
  script.addEventListener("input", showScriptState);
  $("reset").addEventListener("click", () => {
    script.value = original();
    showScriptState();
  });
  eventType.addEventListener("change", fillVariants);
  eventId.addEventListener("input", () => {
    form.elements.input.value = "event";
  });
  eventType.addEventListener("focus", () => {
    form.elements.input.value = "sample";
  });
  form.addEventListener("submit", (e) => {
    if (e.submitter && e.submitter.getAttribute("formaction")) return; // the download: a plain form post
    e.preventDefault();
    run();
  });
  $("send").addEventListener("click", send);

  script.value = original();
  fillVariants();
  showScriptState();
  const params = new URLSearchParams(location.search);
  if (params.get("event") || params.get("run") === "1") run();
})();
