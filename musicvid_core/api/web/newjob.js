// The new-job form: pick or drop a video (checked and described at once), prompt, the music source
// (composer, library, or your own track: an audio file uploaded the same way), presets, upload with a
// real progress bar (XMLHttpRequest upload progress), cancel, then submit the job.
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

// The audio types the server takes (api/models.py AUDIO_EXT_BY_TYPE), and one for a file by its name
// when the browser gives none or another (a .webm or .opus is often "video/webm" / "audio/ogg").
const AUDIO_TYPES = new Set(["audio/mpeg", "audio/mp3", "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave",
  "audio/flac", "audio/x-flac", "audio/mp4", "audio/x-m4a", "audio/m4a", "audio/aac", "audio/x-aac", "audio/ogg",
  "audio/opus", "audio/webm"]);
const AUDIO_BY_EXT = {
  mp3: "audio/mpeg", wav: "audio/wav", flac: "audio/flac", m4a: "audio/mp4", aac: "audio/aac", ogg: "audio/ogg",
  oga: "audio/ogg", opus: "audio/opus", weba: "audio/webm",
};
const MIN_TRACK_S = 8;  // the track editor's shortest track (issue 15)

export function audioType(file) {
  if (AUDIO_TYPES.has(file.type)) return file.type;
  const ext = (file.name.split(".").pop() || "").toLowerCase();
  return AUDIO_BY_EXT[ext] || null;
}

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
  let track = null, trackUploaded = null;  // the chosen audio file, and its upload ({file, s3_url}) to reuse

  $("file-help").textContent = `MP4, MOV, WebM and most other videos, up to ${bytes(config.max_bytes)}.`;
  for (const text of EXAMPLES) {
    $("chips").append(el("li", {}, el("button", {
      type: "button", text, onclick: () => { $("prompt").value = text; $("prompt").focus(); },
    })));
  }

  // A file field's one-line error under it, and its aria-invalid state (the video's and the track's).
  function fieldError(id, field, text) {
    $(id).textContent = text || "";
    show($(id), !!text);
    if (text) field.setAttribute("aria-invalid", "true"); else field.removeAttribute("aria-invalid");
  }
  const fileError = (text) => fieldError("file-error", input, text);

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

  // The music source: "My track" shows the audio picker; the file is checked (type, size, length) at once.
  const trackInput = $("track-file");
  const source = () => form.music.value;
  const trackError = (text) => fieldError("track-error", trackInput, text);
  function pickTrack(chosen) {
    track = null;
    show($("track-picked"), false);
    trackError("");
    if (!chosen) return;
    if (chosen.size === 0) return trackError(`"${chosen.name}" is empty (0 bytes). Choose another file.`);
    if (!audioType(chosen)) return trackError(`"${chosen.name}" is not a music file we can use (${chosen.type || "unknown type"}): MP3, WAV, FLAC, M4A, OGG or Opus.`);
    if (chosen.size > config.max_bytes) {
      return trackError(`"${chosen.name}" is ${bytes(chosen.size)}; the limit is ${bytes(config.max_bytes)}.`);
    }
    track = chosen;
    $("track-name").textContent = chosen.name;
    $("track-facts").textContent = ` · ${bytes(chosen.size)}`;
    show($("track-picked"));
    const url = URL.createObjectURL(chosen);
    const probe = new Audio();
    probe.preload = "metadata";
    probe.addEventListener("loadedmetadata", () => {
      URL.revokeObjectURL(url);
      if (track !== chosen || !Number.isFinite(probe.duration)) return;
      $("track-facts").textContent = ` · ${seconds(probe.duration)} · ${bytes(chosen.size)}`;
      if (probe.duration < MIN_TRACK_S) {
        track = null;
        trackError(`"${chosen.name}" is ${seconds(probe.duration)} long; a track needs at least ${MIN_TRACK_S} s.`);
      }
    });
    probe.addEventListener("error", () => URL.revokeObjectURL(url));  // the server decodes more than a browser
    probe.src = url;
  }
  trackInput.addEventListener("change", () => pickTrack(trackInput.files[0]));
  form.addEventListener("change", (e) => {
    if (e.target.name !== "music") return;
    show($("track-pick"), source() === "track");
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
    if (source() === "track" && !track) {
      if (!$("track-error").textContent) trackError("Choose your track (an audio file) first.");
      trackInput.focus();
      return;
    }
    let opts;
    try { opts = options(); } catch (err) { formError(err.message); $("advanced").open = true; return; }
    $("submit").disabled = true;
    // One presigned POST per file, with the progress bar; a file already sent is not sent again.
    async function send(chosen, type) {
      const target = await api.createUpload(type, chosen.size);
      show($("upload"));
      progress(0, chosen.size);
      $("upload-label").textContent = `Uploading ${chosen.name}`;
      announce(`Uploading ${chosen.name}`);
      upload = uploadForm(target.upload, new File([chosen], chosen.name, { type }), progress);
      await upload.done;
      announce("Upload finished");
      return target.s3_url;
    }
    try {
      if (!uploaded || uploaded.file !== file) {
        uploaded = { file, s3_url: await send(file, videoType(file)), token: crypto.randomUUID() };
      }
      const music = { source: source() };
      if (music.source === "track") {
        if (!trackUploaded || trackUploaded.file !== track) {
          trackUploaded = { file: track, s3_url: await send(track, audioType(track)) };
          uploaded.token = crypto.randomUUID();  // another track: another job
        }
        music.s3_url = trackUploaded.s3_url;
        // what the plan and the job view call it (the stored key is server-made); the API drops
        // control characters and refuses more than 200
        const title = track.name.replace(/[\u0000-\u001f\u007f-\u009f]/g, "").trim().slice(0, 200);
        if (title) music.title = title;
      }
      const job = await api.submit({ s3_url: uploaded.s3_url, prompt, client_token: uploaded.token, music, ...opts });
      uploaded = null;
      trackUploaded = null;
      form.reset();
      pick(null);
      pickTrack(null);
      show($("track-pick"), false);
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
