// The page of `nlp-lstm serve`: asks /v1/models what is served and /v1/explain why a model answers.
// Plain script, no build step, no network beyond this server. Every text from the server is put in
// with textContent (never parsed as HTML). Shades stay at most 65% opaque over white, so the black
// text on them keeps a contrast of at least 5:1; the sign also shows as a solid (for) or dashed
// (against) underline whose thickness grows with the strength. A tagger's spans get a light
// background per type with the type written after them, and low-confidence tokens a dotted
// underline and a "?", so neither the type nor the doubt is told by colour alone.
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
  const notes = { classifier: "shows label probabilities and word attributions",
                  summarizer: "shows the summary, attention and copying",
                  tagger: "shows each token's tag, its probability and the runner-up" };
  $("model-note").textContent = model ? notes[model.kind] || "" : "";
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

// A tagger's tokens in segments, as inference/explain_tagger.py lays them out for the terminal and
// the HTML file: an entity span (B-PER I-PER), a token whose plain tag is a type of its own (NOUN),
// or a token tagged O (no type).
const LOW_CONFIDENCE = 0.7;  // inference/explain_tagger.py LOW_CONFIDENCE
const COLOURS = 12;  // .t0 ... .t11 in page.css
const LEAST_SURE = 5;

function tagType(tag) {
  if (tag === "O") return null;
  const prefixed = /^[BIESUL]-(.+)$/.exec(tag);
  return prefixed ? prefixed[1] : tag;
}

function segmentsOf(result) {
  const starts = new Map(result.spans.map((span) => [span.start, span]));
  const segments = [];
  for (let i = 0; i < result.words.length;) {
    const span = starts.get(i);
    if (span) {
      const tokens = [];
      for (let t = span.start; t < span.end; t++) tokens.push(t);
      segments.push({ type: span.type, tokens, confidence: span.confidence, span });
      i = span.end;
    } else {
      const type = tagType(result.words[i].tag);
      segments.push({ type, tokens: [i], confidence: type === null ? null : result.words[i].probability, span: null });
      i += 1;
    }
  }
  return segments;
}

function gapBefore(result, i) {  // the text's own space between two tokens (pre-tokenized: one space)
  if (i === 0) return "";
  const words = result.words;
  if (words[i].start === undefined) return " ";
  return result.text.slice(words[i - 1].end, words[i].start) ? " " : "";
}

function spanText(result, segment) {
  return segment.tokens.map((i) => (i === segment.tokens[0] ? "" : gapBefore(result, i)) + result.words[i].token).join("");
}

function cells(row, values) {
  row.replaceChildren(...values.map((value) => {
    const cell = document.createElement(row.parentElement && row.parentElement.tagName === "THEAD" ? "th" : "td");
    if (value instanceof Node) cell.append(value); else cell.textContent = value;
    return cell;
  }));
  return row;
}

function table(target, head, rows) {
  const thead = document.createElement("thead");
  const top = document.createElement("tr");
  thead.append(top);
  cells(top, head);
  const tbody = document.createElement("tbody");
  rows.forEach((values) => { const row = document.createElement("tr"); tbody.append(row); cells(row, values); });
  target.replaceChildren(thead, tbody);
}

function chip(type, colour) {
  const mark = document.createElement("span");
  mark.className = "ent " + colour;
  mark.textContent = type;
  return mark;
}

function showTagger(result) {
  const words = result.words, segments = segmentsOf(result);
  const order = [];
  segments.forEach((segment) => { if (segment.type !== null && !order.includes(segment.type)) order.push(segment.type); });
  const colour = (type) => "t" + (order.indexOf(type) % COLOURS);
  const low = words.filter((word) => word.probability < LOW_CONFIDENCE).length;
  const legend = $("tag-legend");
  const doubt = document.createElement("span");
  doubt.className = "low";
  doubt.textContent = "low confidence";
  legend.replaceChildren(...order.map((type) => chip(type, colour(type))), doubt,
    " (tag probability under " + LOW_CONFIDENCE.toFixed(2) + ": " + low + " of " + words.length +
    " tokens). Hover over or tab to a token for its tag's probability and the runner-up.");
  const target = $("tagged"), info = $("tag-info"), tokens = [];
  target.replaceChildren();
  segments.forEach((segment) => {
    const first = segment.tokens[0];
    target.append(gapBefore(result, first));
    const holder = segment.type === null ? target : document.createElement("mark");
    const inSpan = segment.type !== null && (segment.tokens.length > 1 || words[first].tag !== segment.type);
    segment.tokens.forEach((i) => {
      const word = words[i];
      if (i !== first) holder.append(gapBefore(result, i));
      const token = document.createElement("span");
      token.className = "tok" + (word.probability < LOW_CONFIDENCE ? " low" : "");
      token.tabIndex = 0;
      token.textContent = word.token;
      token.dataset.tag = word.tag;
      token.dataset.probability = String(word.probability);
      const note = word.token + ": " + word.tag + " " + word.probability.toFixed(3) + "; runner-up " + word.runner_up +
        " " + word.runner_up_probability.toFixed(3) + (word.probability < LOW_CONFIDENCE ? " (low confidence)" : "") +
        (inSpan ? "; in the " + segment.type + " span \u201c" + spanText(result, segment) + "\u201d" +
          (segment.confidence === undefined || segment.confidence === null ? "" : " " + segment.confidence.toFixed(3)) : "");
      token.title = note;
      const show = () => {
        tokens.forEach((other) => other.classList.toggle("active", other === token));
        info.textContent = note;
      };
      token.addEventListener("mouseenter", show);
      token.addEventListener("focus", show);
      tokens.push(token);
      holder.append(token);
    });
    if (segment.type !== null) {
      holder.className = "ent " + colour(segment.type);
      const label = document.createElement("span");
      label.className = "type";
      label.textContent = segment.type;
      holder.append(label);
      target.append(holder);
    }
  });
  info.textContent = "";
  const spanned = words.some((word) => word.tag === "O" || /^[BIESUL]-/.test(word.tag));  // else a plain tag set (POS)
  $("tag-note").textContent = words.length + " tokens" + (spanned ? ", " + result.spans.length + (result.spans.length === 1 ? " span." : " spans.") : ".") +
    (result.truncated ? " The text is longer than the model reads: only the tokens shown were read." : "");
  $("spans-block").hidden = !result.spans.length;
  table($("spans"), ["type", "text", "tokens", "probability"], segments.filter((s) => s.span).map((s) => [
    chip(s.type, colour(s.type)), spanText(result, s),
    s.tokens.length > 1 ? s.tokens[0] + "\u2013" + s.tokens[s.tokens.length - 1] : String(s.tokens[0]),
    s.confidence === undefined ? "" : s.confidence.toFixed(3)]));
  const unsure = words.map((word, i) => [word.probability, i]).sort((a, b) => a[0] - b[0] || a[1] - b[1])
    .slice(0, LEAST_SURE).map(([, i]) => words[i]);
  table($("unsure"), ["token", "tag", "probability", "runner-up", "probability"], unsure.map((word) => [
    word.token, word.tag, word.probability.toFixed(3) + (word.probability < LOW_CONFIDENCE ? " ?" : ""),
    word.runner_up, word.runner_up_probability.toFixed(3)]));
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
    const views = { classifier: showClassifier, summarizer: showSummarizer, tagger: showTagger };
    if (!views[answer.kind]) throw new Error("the page cannot show a " + answer.kind);
    Object.keys(views).forEach((kind) => { $(kind).hidden = answer.kind !== kind; });
    views[answer.kind](result);
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
