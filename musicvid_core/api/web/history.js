// Your videos, newest first, a page at a time with the API's page tokens (Older follows `next`;
// Newer goes back through the tokens already seen).
import { ApiError } from "./api.js";
import { $, apiWords, el, failureWords, show, stageWords, when } from "./util.js";

export const PAGE_SIZE = 10;

export function setupHistory(ctx) {
  const { api } = ctx;
  let tokens = [null], page = 0, next = null;  // tokens[i]: the token that fetches page i

  async function load() {
    $("older").disabled = $("newer").disabled = true;
    let data;
    try {
      data = await api.jobs(ctx.pageSize || PAGE_SIZE, tokens[page]);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) { ctx.signedOut(); return; }
      ctx.fail(apiWords(err));
      return;
    }
    next = data.next;
    const list = $("jobs");
    list.replaceChildren(...data.jobs.map(item));
    show($("jobs-empty"), page === 0 && data.jobs.length === 0);
    $("older").disabled = !next;
    $("newer").disabled = page === 0;
    $("page-no").textContent = data.jobs.length ? `Page ${page + 1}` : "";
  }

  function item(job) {
    const prompt = job.prompts[job.prompts.length - 1];
    const status = { COMPLETED: "Done", FAILED: "Failed", PROCESSING: stageWords(job.stage), SCHEDULED: "Waiting" }[job.status];
    const li = el("li", {},
      el("a", { href: `#/jobs/${job.job_id}`, text: prompt }), " ",
      el("span", { class: `badge ${job.status}`, text: status }),
      el("p", { class: "muted", text: `${when(job.created_at)}${job.prompts.length > 1 ? ` · ${job.prompts.length} prompts` : ""}` }));
    if (job.status === "FAILED") li.append(el("p", { class: "error", text: failureWords(job.error) }));
    else if (job.summary) li.append(el("p", { text: job.summary }));
    return li;
  }

  $("older").addEventListener("click", () => {
    if (!next) return;
    tokens = tokens.slice(0, page + 1).concat([next]);
    page += 1;
    load().then(() => $("jobs-title").focus());
  });
  $("newer").addEventListener("click", () => {
    if (page === 0) return;
    page -= 1;
    load().then(() => $("jobs-title").focus());
  });

  return { open() { tokens = [null]; page = 0; next = null; return load(); } };
}
