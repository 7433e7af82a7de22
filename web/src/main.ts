// The console's entry point: reads the station's settings, then shows the sign-in page or,
// with a session already open (the cookie), the console.

import "./style.css";

import type { Account, ConsoleConfig } from "./api";
import { api, ApiError, whenSignedOut } from "./api";
import { ConsolePage } from "./console";
import { h } from "./dom";
import { setEnoughHelp } from "./enough";
import { setTimeZone } from "./format";
import { setLang, currentLang, t } from "./i18n";
import { showLogin } from "./login";

const root = document.getElementById("app") as HTMLElement;
let page: ConsolePage | null = null;

function signInPage(): void {
  page?.stop();
  page = null;
  showLogin(root, (account) => void openConsole(account));
}

let config: ConsoleConfig = { tile_url: "", tile_attribution: "", time_zone: "Asia/Shanghai", version: "" };
let tzWarning: string | null = null;

async function openConsole(account: Account): Promise<void> {
  page?.stop();
  page = new ConsolePage(root, account, config, tzWarning, signInPage);
  await page.start();
}

async function boot(): Promise<void> {
  setLang(currentLang());
  try {
    config = await api.config();
  } catch {
    // An old gateway without the settings route: the defaults do.
  }
  setEnoughHelp(config.enough_help);
  if (!setTimeZone(config.time_zone)) tzWarning = t.tzWarn(config.time_zone);
  whenSignedOut(signInPage);
  try {
    const { account } = await api.session();
    if (account.kind === "operator") {
      await openConsole(account);
      return;
    }
  } catch (e) {
    if (!(e instanceof ApiError) || (e.status !== 401 && e.status !== 0)) {
      root.replaceChildren(h("p", { class: "login-error" }, `${t.failed}${String(e)}`));
      return;
    }
  }
  signInPage();
}

void boot();
