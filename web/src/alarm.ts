// The alarm: a two-tone beep from the Web Audio API (no sound file), repeated while any
// alert waits for acknowledgement. Browsers allow sound only after a click on the page, so
// the console asks for one click to arm it and shows clearly when the sound is off.

export type SoundState = "off" | "on" | "muted";

const REPEAT_MS = 2_000;

export class Alarm {
  private ctx: AudioContext | null = null;
  private timer: number | null = null;
  private wanted = false;
  state: SoundState = "off";

  constructor(private readonly changed: () => void) {}

  /** Called from a click: creates or resumes the audio context. */
  async arm(): Promise<void> {
    try {
      this.ctx ??= new AudioContext();
      await this.ctx.resume();
      this.state = this.ctx.state === "running" ? "on" : "off";
    } catch {
      this.state = "off";
    }
    this.changed();
    this.update();
  }

  mute(): void {
    this.state = "muted";
    this.changed();
    this.update();
  }

  /** Whether the alarm should be sounding now. */
  ring(wanted: boolean): void {
    if (wanted === this.wanted) return;
    this.wanted = wanted;
    this.update();
  }

  get ringing(): boolean {
    return this.wanted;
  }

  private update(): void {
    const play = this.wanted && this.state === "on" && this.ctx !== null;
    if (play && this.timer === null) {
      this.beep();
      this.timer = window.setInterval(() => this.beep(), REPEAT_MS);
    } else if (!play && this.timer !== null) {
      window.clearInterval(this.timer);
      this.timer = null;
    }
  }

  private beep(): void {
    const ctx = this.ctx;
    if (!ctx || ctx.state !== "running") return;
    const t0 = ctx.currentTime;
    const gain = ctx.createGain();
    gain.connect(ctx.destination);
    gain.gain.setValueAtTime(0.0001, t0);
    const osc = ctx.createOscillator();
    osc.type = "square";
    osc.connect(gain);
    // Hi–lo, twice: the pattern of a siren, short enough not to drown a phone call.
    [880, 660, 880, 660].forEach((f, i) => {
      const at = t0 + i * 0.22;
      osc.frequency.setValueAtTime(f, at);
      gain.gain.setValueAtTime(0.18, at);
      gain.gain.setValueAtTime(0.0001, at + 0.19);
    });
    osc.start(t0);
    osc.stop(t0 + 0.9);
  }
}
