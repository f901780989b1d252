// `runc exec` that cannot start the process (no such command, not executable, bad cwd) prints
// "exec failed: ..." on its error stream and exits 255. Docker turns that into an error written to the
// exec's stdout ("OCI runtime exec failed: exec failed: ...: unknown") and an exit code from the message
// (setExitCodeFromError: 126 can't run, 127 not found). This sniffer holds back the start of the error
// stream only as long as it could still be that message, so a process's own output is not delayed.
const PREFIX = 'exec failed:';

/** moby's setExitCodeFromError for a message of the runtime. */
export function startFailureCode(message: string): number {
  const m = message.toLowerCase();
  if (m.includes('permission denied') || m.includes('is a directory')) return 126;
  if (m.includes('not a directory') || m.includes('executable file not found') || m.includes('no such file or directory') || m.includes('system cannot find the file specified')) return 127;
  return 128;
}

export class ExecFailureSniffer {
  private held: Buffer[] = [];
  private heldText = '';
  private deciding = true;
  private readonly pass: (b: Buffer) => void;

  constructor(pass: (b: Buffer) => void) {
    this.pass = pass;
  }

  /** A chunk of the error stream (stderr, or the terminal's output for a tty exec). */
  feed(chunk: Buffer): void {
    if (!this.deciding) return this.pass(chunk);
    this.held.push(chunk);
    this.heldText += chunk.toString('utf8');
    const t = this.heldText.replace(/^[\r\n]+/, '');
    if (t.length >= PREFIX.length ? t.startsWith(PREFIX) : PREFIX.startsWith(t)) return;
    this.flush();
  }

  private flush(): void {
    this.deciding = false;
    for (const b of this.held) this.pass(b);
    this.held = [];
  }

  /**
   * At the exit of runc: the runtime's failure (message and Docker's exit code) when that is what the
   * stream held, else undefined (and whatever was held is passed on).
   */
  finish(exitCode: number): { message: string; exitCode: number } | undefined {
    const t = this.heldText.trim();
    if (this.deciding && exitCode === 255 && t.startsWith(PREFIX)) {
      this.held = [];
      this.deciding = false;
      const message = `OCI runtime exec failed: ${t.split('\n')[0]!.trim()}: unknown`;
      return { message, exitCode: startFailureCode(t) };
    }
    if (this.deciding) this.flush();
    return undefined;
  }
}
