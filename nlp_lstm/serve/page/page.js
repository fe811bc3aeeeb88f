// The page of `nlp-lstm serve`: asks /v1/models what is served and /v1/explain why a model answers.
// Plain script, no build step, no network beyond this server. Every text from the server is put in
// with textContent (never parsed as HTML). Shades stay at most 65% opaque over white, so the black
// text on them keeps a contrast of at least 5:1; the sign also shows as a solid (for) or dashed
// (against) underline whose thickness grows with the strength.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "nlp-lstm-api-key";
let served = [];

function headers() {
  const key = $("key").value.trim();
  const sent = { "Content-Type": "application/json" };
  if (key) sent.Authorization = "Bearer " + key;
  return sent;
}

async function call(path, body) {
  const response = await fetch(path, body === undefined ? { headers: headers() }
    : { method: "POST", headers: headers(), body: JSON.stringify(body) });
  let data = null;
  try { data = await response.json(); } catch (ignored) { /* not JSON: described below */ }
  if (!response.ok) {
    const why = data && data.error ? data.error : "the server answered " + response.status;
    throw new Error(response.status === 401 ? why + " (enter the API key above)" : why);
  }
  return data;
}

function showError(message) {
  $("error").textContent = message ? "Error: " + message : "";
  $("error").hidden = !message;
}

function pending(on) {
  $("go").disabled = on;
  $("ask").setAttribute("aria-busy", on ? "true" : "false");
  $("status").className = on ? "busy" : "";
  $("status").textContent = on ? "Explaining… (a long text or a busy server can take a few seconds)" : "";
}

async function loadModels() {
  showError("");
  try {
    served = (await call("/v1/models")).models;
  } catch (error) {
    showError("cannot list the models: " + error.message);
    if (/API key/.test(error.message)) $("key").focus();
    return;
  }
  const select = $("model");
  select.replaceChildren(...served.map((model) => {
    const option = document.createElement("option");
    option.value = model.name;
    option.textContent = model.name + " (" + model.kind + ")";
    return option;
  }));
  modelChanged();
}

function modelChanged() {
  const model = served.find((m) => m.name === $("model").value);
  const labels = model && model.kind === "classifier" ? model.labels || [] : [];
  $("label-row").hidden = !labels.length;
  const options = [new Option("the predicted one", "")].concat(labels.map((label) => new Option(label, label)));
  $("label").replaceChildren(...options);
  $("model-note").textContent = model ? (model.kind === "classifier"
    ? "shows label probabilities and word attributions" : "shows the summary, attention and copying") : "";
}

function shade(value, largest) {
  const strength = largest > 0 ? Math.min(Math.abs(value) / largest, 1) : 0;
  const colour = value > 0 ? "46, 125, 50" : "198, 40, 40";
  return { background: "rgba(" + colour + ", " + (0.65 * strength).toFixed(3) + ")",
           borderBottomWidth: (1 + Math.round(4 * strength)) + "px" };
}

function signed(x) { return (x >= 0 ? "+" : "") + x.toFixed(3); }

function spacedSpans(target, words, make) {
  target.replaceChildren();
  words.forEach((word, i) => {
    if (i && words[i - 1].end < word.start) target.append(" ");
    target.append(make(word, i));
  });
}

function showClassifier(result) {
  const bars = $("bars");
  bars.replaceChildren();
  Object.entries(result.scores).forEach(([name, p]) => {
    const row = document.createElement("div");
    row.className = "bar-row" + (name === result.predicted ? " top" : "");
    const label = document.createElement("span");
    label.className = "bar-name";
    label.textContent = name;
    const track = document.createElement("div");
    track.className = "bar-track";
    track.setAttribute("role", "meter");
    track.setAttribute("aria-label", name);
    track.setAttribute("aria-valuemin", "0");
    track.setAttribute("aria-valuemax", "1");
    track.setAttribute("aria-valuenow", String(p));
    const fill = document.createElement("div");
    fill.className = "bar-fill";
    fill.style.width = (100 * p).toFixed(1) + "%";
    track.append(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = (100 * p).toFixed(1) + "%";
    row.append(label, track, value);
    bars.append(row);
  });
  $("explained-label").textContent = result.label;
  const largest = Math.max(0, ...result.words.map((w) => Math.abs(w.total)));
  const info = $("word-info");
  spacedSpans($("words"), result.words, (word) => {
    const span = document.createElement("span");
    span.className = "w " + (word.total > 0 ? "for" : "against");
    Object.assign(span.style, shade(word.total, largest));
    const numbers = word.word + ": " + signed(word.total) + " (BiLSTM " + signed(word.lstm) + ", n-gram part " +
      signed(word.linear) + ") " + (word.total > 0 ? "for " : "against ") + result.label;
    span.title = numbers;
    span.tabIndex = 0;
    span.textContent = word.word;
    span.dataset.total = String(word.total);
    const show = () => { info.textContent = numbers; };
    span.addEventListener("mouseenter", show);
    span.addEventListener("focus", show);
    return span;
  });
  info.textContent = "";
  const lstm = result.lstm, linear = result.linear;
  const decided = { bilstm: "the BiLSTM", linear: "the n-gram part", both: "both parts" }[result.decided_by];
  $("parts").textContent = "Score for " + result.label + " " + signed(result.score) + " (logit units) = BiLSTM " +
    signed(lstm.score) + (linear ? " + n-gram part " + signed(linear.score) : "") + "; decided by " + decided +
    ". BiLSTM: integrated gradients, " + lstm.steps + " gradient evaluations (" + lstm.segments + " path segments) from " + lstm.baseline + ", completeness residual " +
    (100 * lstm.relative_residual).toFixed(2) + "%." +
    (result.truncated ? " The text is longer than the model reads: only the words shown were read." : "");
}

function showSummarizer(result) {
  $("summary-text").textContent = result.summary || "(empty)";
  const sources = [];
  spacedSpans($("source"), result.source_words, (word) => {
    const span = document.createElement("span");
    span.className = "w src";
    span.textContent = word.word;
    sources.push(span);
    return span;
  });
  const info = $("output-info");
  const buttons = result.outputs.map((output) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "out" + (output.copied ? " copied" : "");
    button.textContent = output.word;
    button.setAttribute("aria-describedby", "output-info");
    const show = () => {
      buttons.forEach((b) => b.classList.toggle("active", b === button));
      const top = Math.max(1e-9, ...output.attention);
      sources.forEach((span, j) => {
        span.style.background = "rgba(13, 71, 161, " + (0.65 * output.attention[j] / top).toFixed(3) + ")";
        span.classList.toggle("from", output.copied_from === j);
        span.title = "attention " + output.attention[j].toFixed(3);
      });
      const ranked = output.attention.map((a, j) => [a, j]).sort((x, y) => y[0] - x[0]).slice(0, 3);
      info.textContent = "\u201c" + output.word + "\u201d: " + (output.copied
        ? "copied (" + output.copy.toFixed(2) + ") from \u201c" + result.source_words[output.copied_from].word + "\u201d"
        : "generated (copy " + output.copy.toFixed(2) + ")") + ", p_gen " + output.p_gen.toFixed(2) +
        "; looked most at " + ranked.map(([a, j]) => result.source_words[j].word + " " + a.toFixed(2)).join(", ");
    };
    button.addEventListener("mouseenter", show);
    button.addEventListener("focus", show);
    return button;
  });
  $("outputs").replaceChildren(...buttons);
  if (!buttons.length) $("outputs").textContent = "(the summary is empty)";
  info.textContent = "";
}

async function explain(event) {
  event.preventDefault();
  const text = $("text").value;
  if (!text.trim()) {
    showError("the text is empty: type or paste a text to explain");
    $("text").focus();
    return;
  }
  showError("");
  pending(true);
  try {
    const body = { texts: [text], model: $("model").value || null };
    if (!$("label-row").hidden && $("label").value) body.label = $("label").value;
    const answer = await call("/v1/explain", body);
    const result = answer.results[0];
    $("classifier").hidden = answer.kind !== "classifier";
    $("summarizer").hidden = answer.kind !== "summarizer";
    if (answer.kind === "classifier") showClassifier(result); else showSummarizer(result);
    $("result").hidden = false;
    $("result").scrollIntoView({ block: "start" });
  } catch (error) {
    showError(error.message === "Failed to fetch" ? "the server cannot be reached; is it running?" : error.message);
  } finally {
    pending(false);
  }
}

$("ask").addEventListener("submit", explain);
$("model").addEventListener("change", modelChanged);
$("text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("ask").requestSubmit();
});
$("key").value = sessionStorage.getItem(KEY) || "";
$("key").addEventListener("change", () => { sessionStorage.setItem(KEY, $("key").value.trim()); loadModels(); });
loadModels();
