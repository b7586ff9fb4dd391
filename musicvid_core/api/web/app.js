// musicvid web app: plain ES modules, no build step (docs/web.md says why). It reads config.json
// (written by `musicvid serve`, or by the deploy on AWS), signs in, and routes on the URL's hash:
// #/new, #/jobs, #/jobs/ID. Nothing secret ever goes in the URL.
import { Api } from "./api.js";
import { Auth } from "./auth.js";
import { setupHistory } from "./history.js";
import { setupJob } from "./job.js";
import { setupNewJob } from "./newjob.js";
import { $, announce, show } from "./util.js";

const VIEWS = ["view-signin", "view-new", "view-job", "view-jobs"];
const JOB_ROUTE = /^#\/jobs\/([0-9a-fA-F-]{36})$/;

async function loadConfig() {
  const response = await fetch("config.json", { cache: "no-store", credentials: "omit" });
  if (!response.ok) throw new Error(`config.json: ${response.status}`);
  return response.json();
}

function fail(text) {
  $("page-error").textContent = text || "";
  show($("page-error"), !!text);
}

let landed = false;  // the first page keeps the browser's own focus start (the skip link comes first)

function showView(id, title) {
  for (const v of VIEWS) show($(v), v === id);
  for (const [link, match] of [["nav-new", "view-new"], ["nav-jobs", "view-jobs"]]) {
    if (match === id) $(link).setAttribute("aria-current", "page"); else $(link).removeAttribute("aria-current");
  }
  document.title = `${title} · musicvid`;
  const heading = $(id).querySelector("h1");
  heading.tabIndex = -1;
  if (landed) heading.focus();  // after a navigation, screen readers and keyboards land on the new title
  landed = true;
}

async function main() {
  let config;
  try {
    config = await loadConfig();
  } catch (err) {
    fail(`The app's settings could not be loaded (${err.message}).`);
    return;
  }
  const auth = new Auth(config.auth, config.api || "");
  const api = new Api(config.api || "", () => auth.token());
  const ctx = { api, config, fail, go: (hash) => { location.hash = hash; }, signedOut: null };
  ctx.signedOut = (why = "Your session has ended: sign in again.") => {
    auth.forget();
    route();
    fail(why);
  };

  const job = setupJob(ctx);
  const history = setupHistory(ctx);
  setupNewJob(ctx);

  try {
    await auth.finishHosted();
  } catch (err) {
    fail(err.message);
  }

  // Sign-in choices this deployment offers.
  const kind = config.auth && config.auth.kind;
  show($("dev-signin"), kind === "local" && config.auth.dev_sign_in);
  show($("hosted-signin"), kind === "cognito");
  show($("no-signin"), !(kind === "cognito" || (kind === "local" && config.auth.dev_sign_in)));
  if (kind === "local") $("dev-user").value = config.auth.default_user || "";
  $("dev-signin").addEventListener("submit", async (e) => {
    e.preventDefault();
    fail("");
    try {
      await auth.devSignIn($("dev-user").value.trim());
      announce(`Signed in as ${auth.user()}`);
      if (!location.hash || location.hash === "#/") location.hash = "#/new"; else route();
    } catch (err) {
      fail(err.message);
    }
  });
  $("hosted-signin-button").addEventListener("click", () => auth.startHosted());
  $("sign-out").addEventListener("click", () => { auth.signOut(); route(); announce("Signed out"); });

  function route() {
    const signedIn = !!auth.token();
    show($("nav"), signedIn);
    show($("account"), signedIn);
    $("who").textContent = signedIn ? `Signed in as ${auth.user()}` : "";
    const hash = location.hash || "#/new";
    if (!JOB_ROUTE.test(hash)) job.close();
    if (!signedIn) { showView("view-signin", "Sign in"); return; }
    fail("");
    const m = JOB_ROUTE.exec(hash);
    if (m) { showView("view-job", "Your video"); job.open(m[1].toLowerCase()); return; }
    if (hash === "#/jobs") { showView("view-jobs", "Your videos"); history.open(); return; }
    showView("view-new", "New video");
  }

  window.addEventListener("hashchange", route);
  route();
}

main();
