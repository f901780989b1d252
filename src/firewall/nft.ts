// libnftables in process, through koffi. One nft context is created and reused (it holds the netlink
// socket and nft's cache): spawning the `nft` binary costs ~10 ms per call, a transaction here ~0.5 ms.
// The text syntax is used rather than JSON because nft 1.0.6 crashes on JSON `dnat` with concatenated
// map data, which loom's published-port maps need.
//
// Namespaces: libnftables opens its netlink socket when the context is created, in the network namespace
// of the calling thread; the context then keeps talking to that namespace. The daemon creates its Nft
// inside the namespace it manages (it runs there), so nothing here switches namespaces.
//
// Input goes through an anonymous in-memory file (memfd) and nft_run_cmd_from_filename rather than
// nft_run_cmd_from_buffer: for a multi-line buffer, libnftables 1.0.6 reports every error against the
// buffer's *first* line, whereas for a file it reports "file:LINE:COLUMN", which lets NftError name the
// element or rule that failed. Either way the whole input is one netlink batch, i.e. one transaction.
import fs from 'node:fs';
import koffi from 'koffi';

const LIB_CANDIDATES = ['libnftables.so.1', '/usr/lib/x86_64-linux-gnu/libnftables.so.1', '/usr/lib/libnftables.so.1', '/usr/lib64/libnftables.so.1'];

interface NftLib {
  memfdCreate: (name: string, flags: number) => number;
  sigmask: (how: number, set: Buffer, old: Buffer | null) => number;
  ctxNew: (flags: number) => unknown;
  ctxFree: (ctx: unknown) => void;
  bufferOutput: (ctx: unknown) => number;
  bufferError: (ctx: unknown) => number;
  outputSetFlags: (ctx: unknown, flags: number) => void;
  runFile: (ctx: unknown, path: string) => number;
  getOutput: (ctx: unknown) => string | null;
  getError: (ctx: unknown) => string | null;
}

let lib: NftLib | null = null;
const MFD_CLOEXEC = 1;
const SIG_BLOCK = 0, SIG_SETMASK = 2;
/** sigset_t of every signal but the synchronous ones (SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV) */
const BLOCK_ASYNC = (() => {
  const set = Buffer.alloc(128, 0);
  for (let sig = 1; sig <= 64; sig++) {
    if ([4, 5, 6, 7, 8, 11].includes(sig)) continue;
    set[(sig - 1) >> 3]! |= 1 << ((sig - 1) & 7);
  }
  return set;
})();

/** Loaded on first use, so that importing the firewall module costs nothing in processes that never apply rules. */
function load(): NftLib {
  if (lib) return lib;
  let handle: ReturnType<typeof koffi.load> | null = null;
  const errors: string[] = [];
  for (const c of LIB_CANDIDATES) {
    try {
      handle = koffi.load(c);
      break;
    } catch (e) {
      errors.push(`${c}: ${(e as Error).message}`);
    }
  }
  if (!handle) throw new NftError(`cannot load libnftables (install the libnftables1 package): ${errors.join('; ')}`, '', '');
  const libc = koffi.load('libc.so.6');
  koffi.opaque('nft_ctx');
  lib = {
    memfdCreate: libc.func('int memfd_create(const char *name, unsigned int flags)'),
    sigmask: libc.func('int pthread_sigmask(int how, const uint8_t *set, _Out_ uint8_t *old)'),
    ctxNew: handle.func('nft_ctx *nft_ctx_new(uint32_t flags)'),
    ctxFree: handle.func('void nft_ctx_free(nft_ctx *ctx)'),
    bufferOutput: handle.func('int nft_ctx_buffer_output(nft_ctx *ctx)'),
    bufferError: handle.func('int nft_ctx_buffer_error(nft_ctx *ctx)'),
    outputSetFlags: handle.func('void nft_ctx_output_set_flags(nft_ctx *ctx, unsigned int flags)'),
    runFile: handle.func('int nft_run_cmd_from_filename(nft_ctx *ctx, const char *filename)'),
    // Both return a buffer owned by the context and valid until the next call; koffi copies it into a JS string.
    getOutput: handle.func('const char *nft_ctx_get_output_buffer(nft_ctx *ctx)'),
    getError: handle.func('const char *nft_ctx_get_error_buffer(nft_ctx *ctx)'),
  };
  return lib;
}

/** A failed nft transaction: nothing of it was applied. `message` carries nft's own report. */
export class NftError extends Error {
  /** nft's error text: the message, the offending input line and a caret marker under the bad part */
  readonly nftMessage: string;
  /** the input lines nft pointed at (its error text names them by line number) */
  readonly failingLines: string;
  constructor(message: string, nftMessage: string, failingLines: string) {
    super(message);
    this.name = 'NftError';
    this.nftMessage = nftMessage;
    this.failingLines = failingLines;
  }
}

/** The lines of `commands` that nft's error text points at ("line 12:3-40: Error: ..."). */
function failingLines(commands: string, err: string): string {
  const lines = commands.split('\n');
  const seen = new Set<number>();
  const out: string[] = [];
  for (const m of err.matchAll(/^line (\d+):\d+(?:-\d+)?: Error/gm)) {
    const n = Number(m[1]);
    if (seen.has(n) || !lines[n - 1]) continue;
    seen.add(n);
    out.push(`line ${n}: ${lines[n - 1]!.trim()}`);
  }
  return out.join('\n');
}

export class Nft {
  private ctx: unknown;
  private readonly lib: NftLib;
  private readonly oldMask = Buffer.alloc(128);

  /** opts.handles: listings show each rule's handle (`# handle N`), as `nft -a` (NFT_CTX_OUTPUT_HANDLE) */
  constructor(opts: { handles?: boolean } = {}) {
    this.lib = load();
    const ctx = this.lib.ctxNew(0); // NFT_CTX_DEFAULT
    if (!ctx) throw new NftError('nft_ctx_new failed', '', '');
    // Buffered output and errors: otherwise libnftables writes to the process's stdout and stderr.
    if (this.lib.bufferOutput(ctx) !== 0 || this.lib.bufferError(ctx) !== 0) {
      this.lib.ctxFree(ctx);
      throw new NftError('nft_ctx_buffer_output/error failed', '', '');
    }
    if (opts.handles) this.lib.outputSetFlags(ctx, 1 << 3);
    this.ctx = ctx;
  }

  /**
   * Runs `commands` (nft text syntax, several lines) as one transaction: nft sends the whole buffer in one
   * netlink batch, so either all of it is applied or nothing. Returns nft's output (for `list ...`).
   */
  run(commands: string): string {
    if (!this.ctx) throw new NftError('nft context is closed', '', '');
    const fd = this.lib.memfdCreate('loom-nft', MFD_CLOEXEC);
    if (fd < 0) throw new NftError(`memfd_create failed (errno ${koffi.errno()})`, '', '');
    let rc: number;
    try {
      fs.writeSync(fd, commands);
      // libnftables waits for the kernel's answer in select(), which any signal interrupts whatever
      // SA_RESTART says: nft then reports "Interrupted system call" for a batch the kernel may already have
      // committed. Asynchronous signals (SIGCHLD of runc children, SIGPROF of --cpu-prof, SIGTERM...) wait
      // until the call returns; their handlers run right after.
      this.lib.sigmask(SIG_BLOCK, BLOCK_ASYNC, this.oldMask);
      try {
        rc = this.lib.runFile(this.ctx, `/proc/self/fd/${fd}`);
      } finally {
        this.lib.sigmask(SIG_SETMASK, this.oldMask, null);
      }
    } finally {
      fs.closeSync(fd);
    }
    // Reading a buffer also resets it, so both are read every time: stale text must not leak into the next call.
    const out = this.lib.getOutput(this.ctx) ?? '';
    const err = this.lib.getError(this.ctx) ?? '';
    if (rc !== 0) {
      // The memfd's path means nothing to a reader: name the input line instead.
      const text = err.trim().replace(/\/proc\/self\/fd\/\d+:(\d+):/g, 'line $1:') || `nft failed with status ${rc}`;
      const lines = failingLines(commands, text);
      // nft quotes the failing line itself when it can; add it only where it did not.
      const missing = lines.split('\n').filter((l) => l && !text.includes(l.replace(/^line \d+: /, '')));
      throw new NftError(`nft: ${text}${missing.length ? `\nfailing input:\n${missing.join('\n')}` : ''}`, text, lines);
    }
    return out;
  }

  close(): void {
    if (this.ctx) this.lib.ctxFree(this.ctx);
    this.ctx = null;
  }
}
