// The new-job form: pick or drop a video (checked and described at once), prompt, presets, upload
// with a real progress bar (XMLHttpRequest upload progress), cancel, then submit the job.
import { ApiError, uploadForm } from "./api.js";
import { $, announce, apiWords, bytes, el, seconds, show } from "./util.js";

// Example prompts, one per style the rules planner knows (musicvid_core/domain/styles.py).
const EXAMPLES = [
  "warm acoustic, slow build, big finish", "cinematic trailer, tense then epic", "lo-fi hip-hop, relaxed",
  "upbeat electronic house", "calm ambient pads", "energetic rock", "orchestral and hopeful",
  "playful swing jazz", "upbeat corporate", "gentle solo piano",
];
// What the server stores uploads as (api/core.py EXT_BY_TYPE): a file with no type gets one from its name.
const TYPE_BY_EXT = {
  mp4: "video/mp4", m4v: "video/x-m4v", mov: "video/quicktime", webm: "video/webm", mkv: "video/x-matroska",
  mpg: "video/mpeg", mpeg: "video/mpeg", ts: "video/mp2t", "3gp": "video/3gpp", avi: "video/x-msvideo", ogv: "video/ogg",
};

export function videoType(file) {
  if (/^video\/[A-Za-z0-9][A-Za-z0-9.+-]{0,62}$/.test(file.type)) return file.type;
  if (file.type) return null;  // a type, and not a video's
  const ext = (file.name.split(".").pop() || "").toLowerCase();
  return TYPE_BY_EXT[ext] || null;
}

export function setupNewJob(ctx) {
  const { api, config } = ctx;
  const input = $("file"), drop = $("drop"), form = $("new-form");
  let file = null, posterUrl = null, upload = null, uploaded = null;  // uploaded: {file, s3_url} to reuse

  $("file-help").textContent = `MP4, MOV, WebM and most other videos, up to ${bytes(config.max_bytes)}.`;
  for (const text of EXAMPLES) {
    $("chips").append(el("li", {}, el("button", {
      type: "button", text, onclick: () => { $("prompt").value = text; $("prompt").focus(); },
    })));
  }

  function fileError(text) {
    $("file-error").textContent = text || "";
    show($("file-error"), !!text);
    if (text) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
  }

  function pick(chosen) {
    file = null;
    show($("picked"), false);
    if (!chosen) return;
    if (chosen.size === 0) return fileError(`"${chosen.name}" is empty (0 bytes). Choose another file.`);
    if (!videoType(chosen)) return fileError(`"${chosen.name}" is not a video (${chosen.type || "unknown type"}).`);
    if (chosen.size > config.max_bytes) {
      return fileError(`"${chosen.name}" is ${bytes(chosen.size)}; the limit is ${bytes(config.max_bytes)}.`);
    }
    fileError("");
    file = chosen;
    $("picked-name").textContent = chosen.name;
    $("picked-size").textContent = bytes(chosen.size);
    $("picked-duration").textContent = "…";
    $("picked-dims").textContent = "…";
    show($("picked"));
    describe(chosen);
  }

  // Duration, picture size and a poster frame, read by the browser from the file itself (nothing is sent).
  function describe(chosen) {
    if (posterUrl) URL.revokeObjectURL(posterUrl);
    const url = URL.createObjectURL(chosen);
    const probe = document.createElement("video");
    probe.muted = true;
    probe.preload = "auto";
    probe.addEventListener("loadedmetadata", () => {
      $("picked-duration").textContent = seconds(probe.duration);
      $("picked-dims").textContent = `${probe.videoWidth} × ${probe.videoHeight}`;
      probe.currentTime = Math.min(0.5, (probe.duration || 1) / 2);
    });
    probe.addEventListener("seeked", () => {
      const canvas = document.createElement("canvas");
      canvas.width = probe.videoWidth;
      canvas.height = probe.videoHeight;
      canvas.getContext("2d").drawImage(probe, 0, 0);
      canvas.toBlob((blob) => {
        if (blob && file === chosen) { posterUrl = URL.createObjectURL(blob); $("poster").src = posterUrl; }
        URL.revokeObjectURL(url);
      }, "image/jpeg", 0.8);
    }, { once: true });
    probe.addEventListener("error", () => {
      $("picked-duration").textContent = "unknown";
      $("picked-dims").textContent = "this browser can't preview it (the server may still read it)";
      URL.revokeObjectURL(url);
    });
    probe.src = url;
  }

  input.addEventListener("change", () => pick(input.files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) pick(e.dataTransfer.files[0]);
  });

  function formError(text) {
    $("new-error").textContent = text || "";
    show($("new-error"), !!text);
  }

  function options() {
    const out = { loudness: form.loudness.value, preview: $("preview").checked, stems: $("stems").checked,
                  source_music: form.source_music.value };
    for (const [id, key, lo, hi] of [["target-lufs", "target_lufs", -40, -5], ["true-peak", "true_peak_dbtp", -9, 0]]) {
      const raw = $(id).value.trim();
      if (!raw) continue;
      const v = Number(raw);
      if (!Number.isFinite(v) || v < lo || v > hi) throw new Error(`${$(id).labels[0].textContent.split(",")[0]} must be between ${lo} and ${hi}.`);
      out[key] = v;
    }
    const hits = $("hits").value.trim();
    if (hits) {
      const list = hits.split(/[,\s]+/).filter(Boolean).map(Number);
      if (list.some((h) => !Number.isFinite(h) || h < 0)) throw new Error("Hits must be seconds (numbers of 0 or more), separated by commas.");
      out.hits = list;
    }
    return out;
  }

  function progress(sent, total) {
    const pct = total ? Math.round((sent / total) * 100) : 0;
    $("upload-progress").value = pct;
    $("upload-text").textContent = `${pct}% · ${bytes(sent)} of ${bytes(total)}`;
  }

  $("upload-cancel").addEventListener("click", () => { if (upload) upload.abort(); });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    formError("");
    if (!file) { fileError(input.files.length ? $("file-error").textContent : "Choose a video first."); input.focus(); return; }
    const prompt = $("prompt").value.trim();
    if (!prompt) { formError("Say what the music should be like."); $("prompt").focus(); return; }
    let opts;
    try { opts = options(); } catch (err) { formError(err.message); $("advanced").open = true; return; }
    $("submit").disabled = true;
    try {
      if (!uploaded || uploaded.file !== file) {
        const type = videoType(file);
        const target = await api.createUpload(type, file.size);
        show($("upload"));
        progress(0, file.size);
        $("upload-label").textContent = `Uploading ${file.name}`;
        announce("Upload started");
        upload = uploadForm(target.upload, new File([file], file.name, { type }), progress);
        await upload.done;
        uploaded = { file, s3_url: target.s3_url, token: crypto.randomUUID() };
        announce("Upload finished");
      }
      const job = await api.submit({ s3_url: uploaded.s3_url, prompt, client_token: uploaded.token, ...opts });
      uploaded = null;
      form.reset();
      pick(null);
      ctx.go(`#/jobs/${job.job_id}`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) { ctx.signedOut(); return; }
      formError(err instanceof ApiError ? apiWords(err) : String(err.message || err));
      $("new-error").focus?.();
    } finally {
      upload = null;
      show($("upload"), false);
      $("submit").disabled = false;
    }
  });
}
