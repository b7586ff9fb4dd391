// Small helpers shared by the views: DOM, formatting, plain words for errors.

export const $ = (id) => document.getElementById(id);

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

export function show(node, on = true) { node.hidden = !on; }

export function announce(text) {
  const box = $("announce");
  box.textContent = "";
  setTimeout(() => { box.textContent = text; }, 50);  // a change screen readers notice
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function seconds(s) {
  if (!Number.isFinite(s)) return "?";
  const m = Math.floor(s / 60), r = s - m * 60;
  return m ? `${m}:${r.toFixed(1).padStart(4, "0")}` : `${r.toFixed(1)} s`;
}

export function when(iso) {
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export const STAGES = [
  ["queued", "Waiting"], ["start", "Starting"], ["analyze", "Watching the video"], ["generate", "Making the music"],
  ["mix", "Mixing"], ["summary", "Finishing"], ["done", "Done"],
];

export function stageWords(stage) {
  return (STAGES.find(([s]) => s === stage) || [stage, stage])[1];
}

// A failed job's reason, in plain words (the technical message is shown apart).
export function failureWords(error) {
  if (!error) return "The job stopped without saying why.";
  const t = error.type || "";
  if (t === "UnsupportedMedia" || (t === "AnalysisError" && error.stage === "analyze"))
    return "This file could not be read as a video. Try another file (MP4, MOV or WebM work best).";
  if (t === "BadInput") return `The request could not be used: ${error.message}`;
  if (t.startsWith("Transient") || t === "States.Timeout")
    return "A service we depend on was busy, so the job gave up. Try again in a minute.";
  if (t === "GenerationError") return "Making the music failed. Try again, or change the prompt.";
  if (t === "MixError") return "Putting the music under the video failed. Try again.";
  if (t === "ConfigurationError") return "The server is missing something it needs for this job; tell its operator.";
  if (t === "PlanValidationError") return "The music plan for this video came out wrong. Try another prompt.";
  if (t === "MediaToolError") return "The video tools failed on this file. Try another file.";
  return `Something went wrong while ${stageWords(error.stage).toLowerCase()}.`;
}

// What an API error means to the person using the page.
export function apiWords(err) {
  if (!err) return "Something went wrong.";
  if (err.code === "too_many_jobs") return "You already have the most videos in progress. Wait for one to finish.";
  if (err.code === "rate_limited") return "Too many requests at once. Wait a moment and try again.";
  if (err.code === "payload_too_large") return `The file is too large. ${err.message}`;
  if (err.status >= 500) return "The server had a problem. Try again in a minute.";
  return err.message;
}
