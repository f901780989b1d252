// The Engine API's JSON message stream as dockerd writes it for pull and push (moby pkg/jsonmessage,
// pkg/streamformatter): one JSON object per line, {status, progressDetail, progress, id}, errors as
// {errorDetail:{message}, error}, push's result as {progressDetail:{}, aux:{Tag,Digest,Size}}.

export interface JsonMessage {
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  progress?: string;
  errorDetail?: { message: string };
  error?: string;
  aux?: unknown;
}

/** go-units HumanSize: decimal units, 4 significant digits (`760.8kB`, `5B`, `1.2MB`). */
export function humanSize(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${Number(n.toPrecision(4))}${units[i]}`;
}

/** JSONProgress.String() at the daemon's width (no terminal: 200 columns, so the bar is drawn). */
export function progressString(current: number, total: number): string {
  if (current <= 0 && total <= 0) return '';
  if (total <= 0) return humanSize(current).padStart(8);
  const pct = Math.min(50, Math.floor(Math.floor((current / total) * 100) / 2));
  const bar = `[${'='.repeat(pct)}>${' '.repeat(Math.max(0, 50 - pct))}] `;
  const nums = current > total ? humanSize(current).padStart(8) : `${humanSize(current).padStart(8)}/${humanSize(total)}`;
  return bar + nums;
}

/** JSON as Go's encoding/json writes it: <, > and & escaped (`[=====>  ]` is `[=====\u003e  ]` on the wire). */
export function goJson(v: unknown): string {
  return JSON.stringify(v).replace(/[<>&]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`);
}

export class ProgressStream {
  private readonly write: (line: string) => void;
  /** per id: the byte count last reported, so updates come every 1% (at least 32 KiB) as moby's reader does */
  private readonly last = new Map<string, number>();

  constructor(write: (line: string) => void) {
    this.write = write;
  }

  send(m: JsonMessage): void {
    this.write(`${goJson(m)}\n`);
  }

  /** progress.Message: a line of text, optionally for an id (`Pulling from library/x` for the tag). */
  message(status: string, id?: string): void {
    this.send(id ? { status, id } : { status });
  }

  /** progress.Update: a layer's new state (`Pulling fs layer`, `Pushed`, ...). */
  status(status: string, id: string): void {
    this.send({ status, progressDetail: {}, id });
  }

  /** A progress update (Downloading, Extracting, Pushing), throttled; the final one always goes out. */
  progress(status: string, id: string, current: number, total: number): void {
    const prev = this.last.get(`${status}/${id}`) ?? -1;
    const step = Math.max(32 * 1024, total / 100);
    if (current !== total && prev >= 0 && current - prev < step) return;
    this.last.set(`${status}/${id}`, current);
    this.send({ status, progressDetail: { current, total }, progress: progressString(current, total), id });
  }

  error(message: string): void {
    this.send({ errorDetail: { message }, error: message });
  }

  aux(aux: unknown): void {
    this.send({ progressDetail: {}, aux });
  }
}
