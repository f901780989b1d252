// Terminal window sizes of containers (`POST /containers/{id}/resize`, `/exec/{id}/resize`). Node has no
// ioctl, so TIOCSWINSZ goes through libc with koffi. Setting the size on any fd of a pty's slave side
// makes the kernel send SIGWINCH to the terminal's foreground process group, which is how a shell or an
// editor inside learns of it.
import fs from 'node:fs';
import koffi from 'koffi';

const TIOCSWINSZ = 0x5414; // asm-generic/ioctls.h (x86_64, arm64)
const libc = koffi.load('libc.so.6');
const c_ioctl = libc.func('int ioctl(int fd, unsigned long request, ...)');

/** The terminal a process has on its stdin, as a path this process can open, or undefined if it has none. */
export function processTerminal(pid: number): string | undefined {
  const p = `/proc/${pid}/fd/0`;
  try {
    // /dev/pts/N as the process sees it (it may be a devpts instance of another mount namespace): the
    // /proc link opens the very terminal whatever namespace it lives in
    return fs.readlinkSync(p).startsWith('/dev/pts/') ? p : undefined;
  } catch {
    return undefined;
  }
}

/** The first child of a process (from /proc/PID/task/PID/children), or undefined. */
export function firstChild(pid: number): number | undefined {
  try {
    const kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    return kids.length ? Number(kids[0]) : undefined;
  } catch {
    return undefined;
  }
}

/** Sets the window size of the terminal at `ttyPath` (rows × columns). */
export function setWindowSize(ttyPath: string, rows: number, cols: number): void {
  const fd = fs.openSync(ttyPath, fs.constants.O_RDWR | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
  try {
    const ws = Buffer.alloc(8); // struct winsize { ws_row, ws_col, ws_xpixel, ws_ypixel } (unsigned short)
    ws.writeUInt16LE(rows, 0);
    ws.writeUInt16LE(cols, 2);
    if (c_ioctl(fd, TIOCSWINSZ, 'uint8_t *', ws) !== 0) throw new Error(`TIOCSWINSZ on ${ttyPath} failed (errno ${koffi.errno()})`);
  } finally {
    fs.closeSync(fd);
  }
}
