// The sign-in form of both pages: an account's name and password. Wrong credentials, the login
// limiter (429, with the wait counted down) and a server out of reach each say so plainly.
// What differs is each page's to say (./login.ts, ./app/login.ts): its heading, the size of
// the form, who may sign in there and what comes next.

import type { Account } from "./api";
import { ApiError } from "./api";
import type { Attrs, Child } from "./dom";
import { h } from "./dom";
import type { PageLang } from "./lang";
import { langButton } from "./lang";

/** The words the form takes from the page's table. */
export interface SignInWords {
  signInTitle: string;
  signInHint: string;
  name: string;
  password: string;
  signIn: string;
  signingIn: string;
  wrongCredentials: string;
  limited: (s: number) => string;
  network: string;
  failed: string;
  langSwitch: string;
  langSwitchLabel: string;
}

export interface SignInPage {
  /** The page's i18n module: the form is drawn anew in the other language on a switch. */
  i18n: PageLang<SignInWords>;
  /** The session routes (the console's `api`, the app's `volunteerApi`). */
  api: {
    signIn(name: string, password: string): Promise<{ account: Account }>;
    signOut(): Promise<void>;
  };
  /** What stands above the form's own title, in the language in use. */
  heading(): Child[];
  /** At a desk the name field takes the keyboard at once (on a phone it would pop up unasked). */
  autofocus: boolean;
  /** More attributes of the name field. */
  nameAttrs?: Attrs;
  submitClass: string;
  /** Why the account may not use this page (it is signed out again), or null where it may. */
  refuse?(account: Account): string | null;
  signedIn(account: Account): void;
}

export function showSignIn(root: HTMLElement, page: SignInPage): void {
  const t = page.i18n.t;
  const name = h("input", {
    id: "name",
    name: "name",
    autocomplete: "username",
    ...page.nameAttrs,
    required: true,
    autofocus: page.autofocus,
  });
  const password = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit", class: page.submitClass }, t.signIn);
  const error = h("p", { class: "login-error", role: "alert", "aria-live": "assertive" });
  let countdown: number | null = null;

  const form = h(
    "form",
    { class: "login", novalidate: true },
    ...page.heading(),
    h("h2", {}, t.signInTitle),
    h("p", { class: "hint" }, t.signInHint),
    h("label", { for: "name" }, t.name),
    name,
    h("label", { for: "password" }, t.password),
    password,
    submit,
    error,
    langButton(page.i18n, () => showSignIn(root, page)),
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
      const { account } = await page.api.signIn(name.value.trim(), password.value);
      const refused = page.refuse?.(account) ?? null;
      if (refused !== null) {
        await page.api.signOut().catch(() => undefined);
        error.textContent = refused;
        return;
      }
      if (countdown !== null) window.clearInterval(countdown);
      page.signedIn(account);
    } catch (e) {
      if (e instanceof ApiError && e.status === 429) {
        let left = e.retryAfter ?? 60;
        error.textContent = t.limited(left);
        // The button stays disabled (see `finally`) until the wait is over.
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
  if (page.autofocus) name.focus();
}
