// The volunteer sign-in page. An operator account signing in here is told to use the station
// console (and signed out again, so this app is never left holding a station session).

import type { Account } from "./api";
import { ApiError, volunteerApi } from "./api";
import { h } from "../dom";
import { currentLang, setLang, t } from "./i18n";

function langButton(redraw: () => void): HTMLButtonElement {
  return h(
    "button",
    {
      type: "button",
      class: "link lang-switch",
      "aria-label": t.langSwitchLabel,
      onclick: () => {
        setLang(currentLang() === "en" ? "zh" : "en");
        redraw();
      },
    },
    t.langSwitch,
  );
}

/** What an operator's session sees here: where the console is, or sign in as someone else. */
export function showOperatorNotice(root: HTMLElement, account: Account, signInAgain: () => void): void {
  root.replaceChildren(
    h(
      "main",
      { class: "login-page" },
      h(
        "div",
        { class: "login operator-notice" },
        h("h1", {}, t.brand, h("small", {}, t.brandSub)),
        h("p", { class: "login-error", role: "alert" }, t.operatorHere),
        h("p", {}, account.display_name),
        h("a", { class: "big primary", href: "/" }, t.openConsole),
        h(
          "button",
          {
            type: "button",
            class: "big secondary",
            onclick: async () => {
              await volunteerApi.signOut().catch(() => undefined);
              signInAgain();
            },
          },
          t.signInAsVolunteer,
        ),
        langButton(() => showOperatorNotice(root, account, signInAgain)),
      ),
    ),
  );
}

export function showLogin(root: HTMLElement, signedIn: (account: Account) => void): void {
  const name = h("input", { id: "name", name: "name", autocomplete: "username", autocapitalize: "none", required: true });
  const password = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit", class: "big primary" }, t.signIn);
  const error = h("p", { class: "login-error", role: "alert", "aria-live": "assertive" });
  let countdown: number | null = null;

  const form = h(
    "form",
    { class: "login", novalidate: true },
    h("img", { class: "login-icon", src: "/app/icons/icon-192.png", alt: "", width: 72, height: 72 }),
    h("h1", {}, t.brand, h("small", {}, t.brandSub)),
    h("h2", {}, t.signInTitle),
    h("p", { class: "hint" }, t.signInHint),
    h("label", { for: "name" }, t.name),
    name,
    h("label", { for: "password" }, t.password),
    password,
    submit,
    error,
    langButton(() => showLogin(root, signedIn)),
  );

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!name.value.trim() || !password.value) {
      error.textContent = t.wrongCredentials;
      return;
    }
    submit.disabled = true;
    submit.textContent = t.signingIn;
    error.textContent = "";
    try {
      const { account } = await volunteerApi.signIn(name.value.trim(), password.value);
      if (countdown !== null) window.clearInterval(countdown);
      signedIn(account);
    } catch (e) {
      if (e instanceof ApiError && e.status === 429) {
        let left = e.retryAfter ?? 60;
        error.textContent = t.limited(left);
        if (countdown !== null) window.clearInterval(countdown);
        countdown = window.setInterval(() => {
          left -= 1;
          if (left <= 0) {
            if (countdown !== null) window.clearInterval(countdown);
            countdown = null;
            error.textContent = "";
            submit.disabled = false;
          } else {
            error.textContent = t.limited(left);
          }
        }, 1000);
        return;
      }
      error.textContent =
        e instanceof ApiError && e.status === 401
          ? t.wrongCredentials
          : e instanceof ApiError && e.status === 0
            ? t.network
            : `${t.failed}${e instanceof Error ? e.message : String(e)}`;
      password.select();
    } finally {
      submit.textContent = t.signIn;
      if (countdown === null) submit.disabled = false;
    }
  });

  root.replaceChildren(h("main", { class: "login-page" }, form));
}
