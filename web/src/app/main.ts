// The volunteer app's entry point (/app/): registers the service worker, then shows the
// sign-in page or, with a session already open (the cookie), the app. An operator's session
// is told to use the station console.

import "./app.css";

import type { Account, ConsoleConfig } from "./api";
import { ApiError, volunteerApi, whenSignedOut } from "./api";
import { App } from "./app";
import { h } from "../dom";
import { setEnoughHelp } from "../enough";
import { currentLang, setLang, t } from "./i18n";
import { showLogin, showOperatorNotice } from "./login";
import { serviceWorker } from "./push";

const root = document.getElementById("app") as HTMLElement;
let app: App | null = null;
let config: ConsoleConfig = { tile_url: "", tile_attribution: "", time_zone: "Asia/Shanghai", version: "" };

function signInPage(): void {
  app?.stop();
  app = null;
  showLogin(root, (account) => void open(account));
}

async function open(account: Account): Promise<void> {
  app?.stop();
  app = null;
  if (account.kind !== "volunteer") {
    showOperatorNotice(root, account, signInPage);
    return;
  }
  app = new App(root, account, config, signInPage);
  await app.start();
}

async function boot(): Promise<void> {
  setLang(currentLang());
  void serviceWorker();
  try {
    config = await volunteerApi.config();
    setEnoughHelp(config.enough_help);
  } catch {
    // Offline or an old gateway: no tiles, and the page says so when it cannot reach the API.
  }
  whenSignedOut(signInPage);
  try {
    const { account } = await volunteerApi.session();
    await open(account);
    return;
  } catch (e) {
    if (e instanceof ApiError && e.status === 0) {
      root.replaceChildren(h("p", { class: "boot-error", role: "alert" }, t.network));
      window.setTimeout(() => void boot(), 5_000);
      return;
    }
    if (!(e instanceof ApiError) || e.status !== 401) {
      root.replaceChildren(h("p", { class: "boot-error", role: "alert" }, `${t.failed}${String(e)}`));
      return;
    }
  }
  signInPage();
}

void boot();
