// The volunteer sign-in page (the form is ../signin.ts). An operator account signing in here is
// told to use the station console (and signed out again, so this app is never left holding a
// station session).

import type { Account } from "./api";
import { volunteerApi } from "./api";
import { h } from "../dom";
import { langButton } from "../lang";
import { showSignIn } from "../signin";
import * as i18n from "./i18n";
import { t } from "./i18n";

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
        langButton(i18n, () => showOperatorNotice(root, account, signInAgain)),
      ),
    ),
  );
}

export function showLogin(root: HTMLElement, signedIn: (account: Account) => void): void {
  showSignIn(root, {
    i18n,
    api: volunteerApi,
    heading: () => [
      h("img", { class: "login-icon", src: "/app/icons/icon-192.png", alt: "", width: 72, height: 72 }),
      h("h1", {}, t.brand, h("small", {}, t.brandSub)),
    ],
    autofocus: false,
    nameAttrs: { autocapitalize: "none" },
    submitClass: "big primary",
    signedIn,
  });
}
