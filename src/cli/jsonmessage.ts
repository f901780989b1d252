// Rendering of the Engine API's JSON message stream (pull, push) as the docker CLI's jsonmessage does: on a
// terminal one line per layer id, redrawn in place with its progress bar; otherwise plain lines, without
// the progress updates. An error message in the stream ends it with that error.
import { humanSize } from '../images/registry/progress.ts';

export interface Message {
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  progress?: string;
  stream?: string;
  errorDetail?: { message: string };
  error?: string;
  aux?: unknown;
}

export class StreamError extends Error {}

/** JSONProgress.String() for a terminal `width` columns wide (the bar only above 110 columns, as docker). */
export function progressBar(current: number, total: number, width: number): string {
  if (current <= 0 && total <= 0) return '';
  if (total <= 0) return humanSize(current).padStart(8);
  const pct = Math.min(50, Math.floor(Math.floor((current / total) * 100) / 2));
  const bar = width > 110 ? `[${'='.repeat(pct)}>${' '.repeat(Math.max(0, 50 - pct))}] ` : '';
  const nums = current > total ? humanSize(current).padStart(8) : `${humanSize(current).padStart(8)}/${humanSize(total)}`;
  return bar + nums;
}

export class MessageRenderer {
  private readonly write: (s: string) => void;
  private readonly tty: boolean;
  private readonly width: number;
  private ids = new Map<string, number>();
  onAux?: (aux: unknown) => void;

  constructor(write: (s: string) => void, tty: boolean, width = 80) {
    this.write = write;
    this.tty = tty;
    this.width = width;
  }

  /** Renders one message; throws StreamError for an error message. */
  render(m: Message): void {
    if (m.errorDetail || m.error) throw new StreamError(m.errorDetail?.message ?? m.error ?? 'unknown error');
    if (m.aux !== undefined) {
      this.onAux?.(m.aux);
      return;
    }
    let diff = 0;
    if (m.id && (m.progressDetail !== undefined || m.progress)) {
      let line = this.ids.get(m.id);
      if (line === undefined) {
        line = this.ids.size;
        this.ids.set(m.id, line);
        if (this.tty) this.write('\n');
      }
      diff = this.ids.size - line;
      if (this.tty && diff > 0) this.write(`\x1b[${diff}A`);
    } else {
      // a line that is not a layer's: earlier layer lines are not redrawn any more (pull -a)
      this.ids = new Map();
    }
    this.display(m);
    if (m.id && this.tty && diff > 0) this.write(`\x1b[${diff}B`);
  }

  private display(m: Message): void {
    const d = m.progressDetail;
    const bar = d ? progressBar(d.current ?? 0, d.total ?? 0, this.width) : '';
    let endl = '';
    if (this.tty && !m.stream && d !== undefined) {
      this.write('\x1b[2K\r');
      endl = '\r';
    } else if (d !== undefined && bar) {
      return; // progress updates are for terminals
    }
    let s = m.id ? `${m.id}: ` : '';
    if (d !== undefined && this.tty) s += `${m.status ?? ''} ${bar}${endl}`;
    else if (m.stream) s += `${m.stream}${endl}`;
    else s += `${m.status ?? ''}${endl}\n`;
    this.write(s);
  }
}

/** Reads a JSON message stream, rendering each message; rejects with the stream's error message. */
export async function renderStream(res: NodeJS.ReadableStream, r: MessageRenderer, onMessage?: (m: Message) => void): Promise<void> {
  let buf = '';
  for await (const chunk of res as AsyncIterable<Buffer>) {
    buf += chunk.toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      const m = JSON.parse(line) as Message;
      onMessage?.(m);
      r.render(m);
    }
  }
  if (buf.trim()) {
    const m = JSON.parse(buf) as Message;
    onMessage?.(m);
    r.render(m);
  }
}
