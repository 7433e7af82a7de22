// The alert history: closed alerts searched by day, kind, category, outcome, cluster and words
// of the household's label or address, newest first, a page at a time ("load more" follows
// the gateway's cursor). A row opens the alert's panel with its timeline; the household opens
// its device record. Days are the station's, whatever the browser's own zone is.

import type { HistoryAlert, HistoryQuery, ZoneMap } from "./api";
import { ApiError, api, CATEGORIES } from "./api";
import { fill, h } from "./dom";
import { dateMinute, duration, stationDayStart } from "./format";
import { label, t } from "./i18n";
import { NoticesView } from "./notices";
import type { StatsView } from "./stats";

type Tab = "search" | "stats" | "notices";

/** Alerts fetched per page. */
const PAGE = 50;
const KINDS = ["help", "medical", "fire", "intrusion"];

export interface HistoryActions {
  /** Opens the alert's panel. */
  open(id: number): void;
  /** Opens a device's record. */
  device(id: string): void;
}

export class HistoryView {
  private rows: HistoryAlert[] = [];
  private next: string | null = null;
  private query: HistoryQuery = {};
  /** Answers to an older search are dropped: only the latest one draws. */
  private generation = 0;
  private form!: HTMLFormElement;
  private list = h("div", { class: "history-results", "aria-live": "polite" });
  private footer = h("div", { class: "history-footer" });
  /** The household the list is narrowed to (from a device record), with a way out. */
  private chip = h("p", { class: "history-chip", hidden: true });
  /** The search, the figures of a period ([`StatsView`]) or the notices to residents
   * ([`NoticesView`]): one tab each. */
  private search_ = h("div", { class: "history-search-tab" });
  private statsEl = h("div", { class: "stats", hidden: true });
  private noticesEl = h("div", { class: "notices-tab", hidden: true });
  /** Loaded on the first visit to its tab (it brings the chart library). */
  private stats: Promise<StatsView> | null = null;
  private notices: NoticesView;
  private current: Tab = "search";

  constructor(
    private readonly el: HTMLElement,
    private readonly actions: HistoryActions,
    private readonly zoneMap: () => ZoneMap | null,
    zones: () => string[] = () => [],
  ) {
    this.notices = new NoticesView(this.noticesEl, zones, zoneMap);
    this.build();
  }

  /** Shows one tab. */
  private tab(name: Tab): void {
    this.current = name;
    this.statsEl.hidden = name !== "stats";
    this.search_.hidden = name !== "search";
    for (const b of this.el.querySelectorAll<HTMLElement>(".history-tab")) {
      b.setAttribute("aria-selected", String(b.dataset.tab === name));
    }
    if (name === "stats") {
      this.stats ??= import("./stats").then((m) => new m.StatsView(this.statsEl, this.zoneMap));
      void this.stats.then((v) => v.show());
    }
    if (name === "notices") this.notices.show();
    else this.notices.hide();
  }

  /** Shows the view; the first time, with the latest closed alerts. */
  show(): void {
    this.el.hidden = false;
    if (this.generation === 0) void this.search();
  }

  hide(): void {
    this.el.hidden = true;
    this.notices.hide();
  }

  get shown(): boolean {
    return !this.el.hidden;
  }

  /** A household's alerts (from its device record). */
  showHousehold(household: string, name: string): void {
    this.build();
    this.tab("search");
    this.el.hidden = false;
    this.chip.hidden = false;
    this.chip.replaceChildren(
      h("span", {}, `${t.colHousehold}: ${name}`),
      h("button", { type: "button", class: "link history-chip-clear", "aria-label": t.historyReset, onclick: () => this.form.reset() }, "×"),
    );
    void this.search({ household });
  }

  /** The language changed: the same search, in the new words. */
  relabel(): void {
    const fields = new FormData(this.form);
    this.build();
    for (const [k, v] of fields) {
      const input = this.form.elements.namedItem(k);
      if (input instanceof HTMLInputElement || input instanceof HTMLSelectElement) input.value = String(v);
    }
    this.draw();
    void this.stats?.then((v) => v.relabel());
    this.notices.relabel();
  }

  private build(): void {
    const select = (name: string, title: string, options: [string, string][]) =>
      h(
        "label",
        {},
        h("span", {}, title),
        h("select", { name, class: `history-${name}` }, h("option", { value: "" }, t.historyAny), options.map(([v, text]) => h("option", { value: v }, text))),
      );
    const clusters = this.zoneMap()?.clusters ?? [];
    this.form = h(
      "form",
      { class: "history-filters", role: "search" },
      h("label", {}, h("span", {}, t.historyFrom), h("input", { type: "date", name: "from", class: "history-from" })),
      h("label", {}, h("span", {}, t.historyTo), h("input", { type: "date", name: "to", class: "history-to" })),
      select("kind", t.historyKind, KINDS.map((k) => [k, label(t.kinds, k)])),
      select("category", t.historyCategory, CATEGORIES.map((c) => [c, label(t.categories, c)])),
      select("state", t.historyState, [
        ["resolved", t.historyResolved],
        ["cancelled", t.historyCancelled],
      ]),
      select("cluster", t.historyCluster, clusters.map((c) => [c.id, c.name || c.id])),
      h(
        "label",
        { class: "history-text-label" },
        h("span", {}, t.historyText),
        h("input", { type: "search", name: "q", class: "history-q", placeholder: t.historyTextHint, maxlength: 100 }),
      ),
      h("input", { type: "hidden", name: "household" }),
      h(
        "div",
        { class: "history-buttons" },
        h("button", { type: "submit", class: "primary history-search" }, t.historySearch),
        h("button", { type: "reset", class: "history-reset" }, t.historyReset),
      ),
    );
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.search();
    });
    this.form.addEventListener("reset", () => {
      this.chip.hidden = true;
      // After the browser has emptied the fields (a hidden one keeps its value: emptied here).
      window.setTimeout(() => {
        const household = this.form.elements.namedItem("household");
        if (household instanceof HTMLInputElement) household.value = "";
        void this.search();
      }, 0);
    });
    const tabButton = (name: Tab, text: string) =>
      h(
        "button",
        { type: "button", role: "tab", class: "history-tab", "data-tab": name, "aria-selected": String(this.current === name), onclick: () => this.tab(name) },
        text,
      );
    this.search_.replaceChildren(
      h("header", { class: "history-head" }, h("h2", {}, t.historyTitle)),
      this.form,
      this.chip,
      this.list,
      this.footer,
    );
    this.el.replaceChildren(
      h(
        "div",
        { class: "history-tabs", role: "tablist" },
        tabButton("search", t.searchTab),
        tabButton("stats", t.statsTab),
        tabButton("notices", t.noticesTab),
      ),
      this.search_,
      this.statsEl,
      this.noticesEl,
    );
  }

  /** What the form asks, as the API's filters. */
  private filters(overrides: HistoryQuery): HistoryQuery {
    const f = new FormData(this.form);
    const text = (k: string) => String(f.get(k) ?? "").trim() || undefined;
    const from = text("from");
    const to = text("to");
    const toStart = to ? stationDayStart(to) : null;
    return {
      from: from ? (stationDayStart(from) ?? undefined) : undefined,
      // The whole last day: up to the start of the next.
      to: toStart !== null ? toStart + 86_400_000 : undefined,
      kind: text("kind"),
      category: text("category"),
      state: text("state"),
      cluster: text("cluster"),
      household: text("household"),
      q: text("q"),
      ...overrides,
    };
  }

  private async search(overrides: HistoryQuery = {}): Promise<void> {
    const generation = ++this.generation;
    this.query = this.filters(overrides);
    const household = this.form.elements.namedItem("household");
    if (household instanceof HTMLInputElement) household.value = this.query.household ?? "";
    this.rows = [];
    this.next = null;
    this.list.replaceChildren(h("p", { class: "history-loading" }, t.loading));
    this.footer.replaceChildren();
    await this.fetch(generation);
  }

  private async more(): Promise<void> {
    if (!this.next) return;
    await this.fetch(this.generation, this.next);
  }

  private async fetch(generation: number, cursor?: string): Promise<void> {
    try {
      const page = await api.history({ ...this.query, limit: PAGE, cursor });
      if (generation !== this.generation) return;
      this.rows.push(...page.alerts);
      this.next = page.next;
      this.draw();
    } catch (e) {
      if (generation !== this.generation) return;
      const why = e instanceof ApiError ? (e.status === 0 ? t.network : e.message) : String(e);
      this.footer.replaceChildren(h("p", { class: "history-error", role: "alert" }, t.historyFailed + why));
      if (this.rows.length === 0) this.list.replaceChildren();
    }
  }

  private draw(): void {
    if (this.rows.length === 0) {
      this.list.replaceChildren(h("p", { class: "history-empty" }, t.historyEmpty));
      this.footer.replaceChildren();
      return;
    }
    const row = (a: HistoryAlert) =>
      h(
        "tr",
        { class: `history-row state-${a.state}`, "data-alert-id": a.id, onclick: () => this.actions.open(a.id) },
        h(
          "td",
          {},
          // The row's own button, for the keyboard; a click anywhere on the row does the same.
          h("button", { type: "button", class: "link history-open" }, h("time", { datetime: a.raised_at }, dateMinute(a.raised_at_ms))),
        ),
        h("td", { class: "history-kind" }, label(t.kinds, a.kind)),
        h(
          "td",
          { class: "history-category" },
          a.state === "cancelled" ? t.historyCancelled : a.category ? label(t.categories, a.category) : "—",
        ),
        h("td", {}, a.cluster_name || a.cluster),
        h(
          "td",
          { class: "history-household" },
          h(
            "button",
            {
              type: "button",
              class: "link history-device",
              title: t.deviceOpen,
              onclick: (e: Event) => {
                e.stopPropagation();
                this.actions.device(a.device);
              },
            },
            a.label,
          ),
        ),
        h("td", { class: "history-duration" }, a.duration_ms === null ? "—" : duration(a.duration_ms)),
      );
    this.list.replaceChildren(
      h(
        "table",
        { class: "history-table" },
        h(
          "thead",
          {},
          h("tr", {}, [t.colTime, t.colKind, t.colCategory, t.colCluster, t.colHousehold, t.colDuration].map((c) => h("th", { scope: "col" }, c))),
        ),
        h("tbody", {}, this.rows.map(row)),
      ),
    );
    fill(
      this.footer,
      h("span", { class: "history-count" }, t.historyShown(this.rows.length, this.next !== null)),
      this.next
        ? h(
            "button",
            {
              type: "button",
              class: "history-more",
              onclick: (e: Event) => {
                const b = e.currentTarget as HTMLButtonElement;
                b.disabled = true;
                void this.more();
              },
            },
            t.historyMore,
          )
        : null,
    );
  }
}
