// The console's sign-in page (the form is ./signin.ts): only an operator account may use the
// console; any other is signed out again and told so.

import type { Account } from "./api";
import { api } from "./api";
import { h } from "./dom";
import * as i18n from "./i18n";
import { t } from "./i18n";
import { showSignIn } from "./signin";

export function showLogin(root: HTMLElement, signedIn: (account: Account) => void): void {
  showSignIn(root, {
    i18n,
    api,
    heading: () => [h("h1", {}, t.appTitle)],
    autofocus: true,
    submitClass: "primary",
    refuse: (account) => (account.kind === "operator" ? null : t.notOperator),
    signedIn,
  });
}
