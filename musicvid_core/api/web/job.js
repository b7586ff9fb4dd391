// One job: its stage live (polled with backoff), elapsed time, the plan as soon as it exists, and
// when done the result: player with an A/B switch (original sound / scored, kept in sync), the
// timeline, re-roll of one segment, regenerate with a new prompt, preview -> full render, downloads.
import { ApiError } from "./api.js";
import { $, announce, apiWords, el, failureWords, seconds, show, STAGES, stageWords } from "./util.js";

const FIRST_DELAY_MS = 1000, MAX_DELAY_MS = 10000, BACKOFF = 1.5, OFFLINE_MAX_MS = 30000;

export function setupJob(ctx) {
  const { api } = ctx;
  const scored = $("scored"), original = $("original");
  let id = null, job = null, timer = null, ticker = null, delay = FIRST_DELAY_MS, since = null, plan = null;
  let shownResult = null;

  function stop() {
    clearTimeout(timer);
    clearInterval(ticker);
    timer = ticker = null;
  }

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(poll, ms);
  }

  async function poll() {
    if (!id) return;
    const asked = id;
    try {
      const fresh = await api.job(asked);
      if (asked !== id) return;
      const moved = !job || fresh.stage !== job.stage || fresh.status !== job.status;
      render(fresh);
      if (fresh.status === "SCHEDULED" || fresh.status === "PROCESSING") {
        delay = moved ? FIRST_DELAY_MS : Math.min(MAX_DELAY_MS, delay * BACKOFF);
        schedule(delay);
      } else {
        stop();
      }
    } catch (err) {
      if (asked !== id) return;
      if (err instanceof ApiError && err.status === 401) { ctx.signedOut(); return; }
      if (err instanceof ApiError && (err.status === 404 || err.status === 400)) {
        stop();
        ctx.fail("There is no such video, or it is not yours.");
        return;
      }
      $("job-status").textContent = `${apiWords(err)} Retrying…`;
      delay = Math.min(OFFLINE_MAX_MS, Math.max(delay * 2, (err.retryAfter || 0) * 1000));
      schedule(delay);
    }
  }

  function running(j) { return j.status === "SCHEDULED" || j.status === "PROCESSING"; }

  function render(fresh) {
    const before = job;
    job = fresh;
    $("job-prompt").textContent = `“${job.prompts[job.prompts.length - 1]}”`;
    renderStages();
    if (running(job)) {
      if (!since || (before && !running(before))) since = Date.parse(job.updated_at);
      if (!ticker) ticker = setInterval(tick, 1000);
      tick();
    } else {
      clearInterval(ticker);
      ticker = null;
      $("elapsed").textContent = "";
    }
    if (!before || before.status !== job.status || before.stage !== job.stage) {
      announce(job.status === "COMPLETED" ? "Your video is ready" : job.status === "FAILED" ? "The job failed"
        : stageWords(job.stage));
    }
    renderFailure();
    renderPlan();
    renderResult();
    renderAgain();
  }

  function renderStages() {
    const list = $("stages");
    list.replaceChildren();
    const at = STAGES.findIndex(([s]) => s === job.stage);
    STAGES.forEach(([stage, words], i) => {
      let cls = i < at || job.status === "COMPLETED" ? "done" : i === at ? "now" : "";
      if (job.status === "FAILED" && i === at) cls = "bad";
      const li = el("li", { class: cls, text: words });
      if (i === at) li.setAttribute("aria-current", "step");
      list.append(li);
    });
    const words = { SCHEDULED: "Waiting for a free worker", PROCESSING: stageWords(job.stage),
                    COMPLETED: "Done", FAILED: "Failed" }[job.status];
    $("job-status").textContent = words;
  }

  function tick() {
    if (!since) return;
    const s = Math.max(0, (Date.now() - since) / 1000);
    $("elapsed").textContent = `· ${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")} elapsed`;
  }

  function renderFailure() {
    const failed = job.status === "FAILED";
    show($("job-failed"), failed);
    if (!failed) return;
    $("failed-words").textContent = failureWords(job.error);
    const e = job.error || {};
    $("failed-tech").textContent = `${e.type || "error"} at ${e.stage || "?"}: ${e.message || ""}`;
  }

  function renderPlan() {
    plan = job.plan;
    show($("plan"), !!plan);
    if (!plan) return;
    const music = plan.music;  // a recording (library or your own track), or null: composed
    show($("plan-music"), !!music);
    if (music) {
      $("music-heading").textContent = music.kind === "library" ? "The track, from the library" : "The track";
      $("music-title").textContent = music.title;
      const facts = [music.free_time ? "free time" : (music.bpm ? `${Math.round(music.bpm)} bpm` : ""), music.key]
        .filter(Boolean).join(", ");
      $("music-facts").textContent = facts ? `(${facts})` : "";
      $("music-why").textContent = music.why || "";
    }
    const line = $("timeline");
    line.replaceChildren();
    const pct = (t) => `${Math.max(0, Math.min(100, (t / plan.duration) * 100))}%`;
    for (const s of plan.segments) {
      const node = el("div", { class: "seg", text: `${s.style} · ${Math.round(s.bpm)}` });
      node.style.left = pct(s.start);
      node.style.width = pct(s.end - s.start);
      line.append(node);
    }
    for (const r of plan.speech) {
      const node = el("div", { class: "speech" });
      node.style.left = pct(r.start);
      node.style.width = pct(r.end - r.start);
      line.append(node);
    }
    for (const t of plan.cuts) { const n = el("div", { class: "cut" }); n.style.left = pct(t); line.append(n); }
    for (const t of plan.hits) { const n = el("div", { class: "hit" }); n.style.left = pct(t); line.append(n); }
    const head = el("div", { class: "playhead", id: "playhead" });
    head.style.left = pct(scored.currentTime || 0);
    line.append(head);
    $("timeline-text").textContent = `${plan.segments.length} segments over ${seconds(plan.duration)}; `
      + `scene cuts at ${plan.cuts.map(seconds).join(", ") || "none"}; `
      + `speech ${plan.speech.map((r) => `${seconds(r.start)} to ${seconds(r.end)}`).join(", ") || "none"}; `
      + `hits ${plan.hits.map(seconds).join(", ") || "none"}.`;
    const rows = $("segments");
    rows.replaceChildren();
    const canReroll = job.status === "COMPLETED";
    for (const s of plan.segments) {
      rows.append(el("tr", {},
        el("td", { text: String(s.index + 1) }),
        el("td", { text: `${seconds(s.start)} – ${seconds(s.end)}` }),
        el("td", { text: `${s.style}, ${s.mood}` }),
        el("td", { text: `${Math.round(s.bpm)} bpm` }),
        el("td", { text: s.key }),
        el("td", {},
          el("button", { type: "button", class: "quiet", text: "Play", "aria-label": `Play segment ${s.index + 1}`,
                         disabled: !job.final_url, onclick: () => { scored.currentTime = s.start; scored.play(); } }),
          " ",
          el("button", { type: "button", class: "quiet", text: "Re-roll", disabled: !canReroll,
                         "aria-label": `Re-roll segment ${s.index + 1} (new music there, the rest stays)`,
                         onclick: () => again({ job_id: job.job_id, segment: s.index },
                                              `Re-rolling segment ${s.index + 1}`) }))));
    }
  }

  function renderResult() {
    const done = job.status === "COMPLETED" && job.final_url;
    show($("result"), !!done);
    if (!done) {
      if (shownResult) { scored.pause(); original.pause(); shownResult = null; }
      return;
    }
    const key = job.final_url.split("?")[0];  // links are re-signed on every read: compare the object
    if (shownResult !== key) {
      shownResult = key;
      scored.src = job.final_url;
      original.src = job.input_url || "";
      setAb("scored");
      $("ab").querySelector('input[value="scored"]').checked = true;
    }
    show($("ab"), !!job.input_url);
    $("result-kind").textContent = job.preview ? "This is a quick preview (small and fast): render it in full when you like it."
      : "Full quality.";
    $("summary").textContent = job.summary || "";
    const links = $("downloads");
    links.replaceChildren(el("li", {}, el("a", { href: job.final_url, download: "", text: "Download the video" })));
    const names = { music: "the music alone", original: "the original sound", master: "the final mix" };
    for (const [name, url] of Object.entries(job.stem_urls || {})) {
      links.append(el("li", {}, el("a", { href: url, download: "", text: `Download ${names[name] || name} (WAV)` })));
    }
  }

  function renderAgain() {
    const terminal = !running(job);
    show($("again"), true);
    $("regen").disabled = !terminal;
    $("regen-preview").checked = !!job.preview;
    show($("full-render"), job.status === "COMPLETED" && job.preview);
    show($("retry"), job.status === "FAILED");
    const list = $("prompt-history");
    list.replaceChildren(...job.prompts.map((p) => el("li", { text: p })));
  }

  async function again(body, words) {
    $("again-error").hidden = true;
    try {
      await api.submit(body);
      announce(words);
      since = Date.now();
      delay = FIRST_DELAY_MS;
      shownResult = null;
      await poll();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) { ctx.signedOut(); return; }
      $("again-error").textContent = err.status === 409 ? "It is still working on this video: wait until it is done."
        : apiWords(err);
      show($("again-error"));
    }
  }

  $("regen-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const prompt = $("regen-prompt").value.trim();
    if (!prompt) { $("regen-prompt").focus(); return; }
    $("regen-prompt").value = "";
    again({ job_id: job.job_id, prompt, preview: $("regen-preview").checked }, "Scoring it again");
  });
  $("full-render").addEventListener("click", () => again({ job_id: job.job_id, preview: false }, "Rendering in full"));
  $("retry").addEventListener("click", () => again({ job_id: job.job_id }, "Trying again"));

  // A/B: the scored video is the one the person controls; the original sound follows it.
  function setAb(which) {
    const orig = which === "original";
    scored.muted = orig;
    original.muted = !orig;
    original.currentTime = scored.currentTime;
    if (!scored.paused) original.play().catch(() => {});
  }
  $("ab").addEventListener("change", (e) => { setAb(e.target.value); announce(e.target.value === "original" ? "Original sound" : "New music"); });
  scored.addEventListener("play", () => { original.currentTime = scored.currentTime; original.play().catch(() => {}); });
  scored.addEventListener("pause", () => original.pause());
  scored.addEventListener("seeking", () => { original.currentTime = scored.currentTime; });
  scored.addEventListener("ratechange", () => { original.playbackRate = scored.playbackRate; });
  scored.addEventListener("volumechange", () => { original.volume = scored.volume; });
  scored.addEventListener("timeupdate", () => {
    if (!scored.paused && Math.abs(original.currentTime - scored.currentTime) > 0.15) original.currentTime = scored.currentTime;
    const head = $("playhead");
    if (head && plan) head.style.left = `${Math.min(100, (scored.currentTime / plan.duration) * 100)}%`;
  });

  return {
    open(jobId) {
      stop();
      id = jobId; job = null; since = null; delay = FIRST_DELAY_MS; shownResult = null;
      for (const part of ["result", "plan", "again", "job-failed"]) show($(part), false);
      $("stages").replaceChildren();
      $("job-status").textContent = "Loading…";
      $("job-prompt").textContent = "";
      scored.removeAttribute("src"); original.removeAttribute("src");
      poll();
    },
    close() { stop(); id = null; scored.pause(); original.pause(); },
    get current() { return job; },
  };
}
