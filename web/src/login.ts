// The sign-in page: an operator account's name and password. Wrong credentials, the login
// limiter (429, with the wait counted down) and a server out of reach each say so plainly.

import type { Account } from "./api";
import { api, ApiError } from "./api";
import { h } from "./dom";
import { currentLang, setLang, t } from "./i18n";

export function showLogin(root: HTMLElement, signedIn: (account: Account) => void): void {
  const name = h("input", { id: "name", name: "name", autocomplete: "username", required: true, autofocus: true });
  const password = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit", class: "primary" }, t.signIn);
  const error = h("p", { class: "login-error", role: "alert", "aria-live": "assertive" });
  let countdown: number | null = null;

  const form = h(
    "form",
    { class: "login", novalidate: true },
    h("h1", {}, t.appTitle),
    h("h2", {}, t.signInTitle),
    h("p", { class: "hint" }, t.signInHint),
    h("label", { for: "name" }, t.name),
    name,
    h("label", { for: "password" }, t.password),
    password,
    submit,
    error,
    h(
      "button",
      {
        type: "button",
        class: "link lang-switch",
        "aria-label": t.langSwitchLabel,
        onclick: () => {
          setLang(currentLang() === "en" ? "zh" : "en");
          showLogin(root, signedIn);
        },
      },
      t.langSwitch,
    ),
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
      const { account } = await api.signIn(name.value.trim(), password.value);
      if (account.kind !== "operator") {
        await api.signOut().catch(() => undefined);
        error.textContent = t.notOperator;
        return;
      }
      if (countdown !== null) window.clearInterval(countdown);
      signedIn(account);
    } catch (e) {
      if (e instanceof ApiError && e.status === 429) {
        let left = e.retryAfter ?? 60;
        error.textContent = t.limited(left);
        submit.disabled = true;
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
  name.focus();
}
