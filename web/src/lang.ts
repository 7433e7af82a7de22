// The language choice both pages share: Simplified Chinese (the default) or English, kept in
// localStorage under one key, so a browser shows the console and the volunteer app in the same
// language. Each page keeps its own word tables (./i18n.ts, ./app/i18n.ts) and builds its
// switch from `languages`; the words both pages say alike are in ./words.ts.

import { h } from "./dom";

export type Lang = "zh" | "en";

const KEY = "tenwatch.lang";

/** The language this browser was set to, "zh" unless it says "en". */
export function stored(): Lang {
  try {
    return localStorage.getItem(KEY) === "en" ? "en" : "zh";
  } catch {
    return "zh";
  }
}

/** A page's language switch over its two word tables. */
export interface Languages<S> {
  /** The table of the language in use. */
  table(): S;
  current(): Lang;
  /** Switches to `next`, remembers it and retitles the page; returns the new table. */
  set(next: Lang): S;
}

export function languages<S extends { appTitle: string }>(tables: Record<Lang, S>): Languages<S> {
  let lang: Lang = stored();
  return {
    table: () => tables[lang],
    current: () => lang,
    set(next) {
      lang = next;
      try {
        localStorage.setItem(KEY, next);
      } catch {
        // Private mode: the choice lasts until the page is closed.
      }
      document.documentElement.lang = next === "en" ? "en" : "zh-CN";
      document.title = tables[next].appTitle;
      return tables[next];
    },
  };
}

/** A value from one of the label tables, or the raw value if it has no label. */
export function label(table: Record<string, string>, key: string): string {
  return table[key] ?? key;
}

/** What a page's i18n module offers the shared pieces (its module namespace will do). */
export interface PageLang<S> {
  readonly t: S;
  currentLang(): Lang;
  setLang(next: Lang): void;
}

/** The button that switches to the other language; `redraw` then shows the page anew. */
export function langButton(
  i18n: PageLang<{ langSwitch: string; langSwitchLabel: string }>,
  redraw: () => void,
  className = "link lang-switch",
): HTMLButtonElement {
  return h(
    "button",
    {
      type: "button",
      class: className,
      "aria-label": i18n.t.langSwitchLabel,
      onclick: () => {
        i18n.setLang(i18n.currentLang() === "en" ? "zh" : "en");
        redraw();
      },
    },
    i18n.t.langSwitch,
  );
}
