// How many people coming are enough for an alert of each kind (the gateway's
// `--enough-help`, as /api/console/config gives it). Past it, the console and the volunteer
// app say "enough help is on the way", as the units and the volunteers' pushes do.

let needed: Record<string, number> = {};

/** Takes the gateway's table (kind → how many; 0 or absent: no limit). */
export function setEnoughHelp(table: Record<string, number> | undefined): void {
  needed = table ?? {};
}

/** Whether `responders` coming are enough for an alert of `kind`. */
export function isEnough(kind: string, responders: number): boolean {
  const n = needed[kind] ?? 0;
  return n > 0 && responders >= n;
}
