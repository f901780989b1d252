// Who may use the API socket: as dockerd's, mode 0660, owned by root and a group (`loom` by default, as
// Docker's `docker` group; scripts/setup creates it). Members of the group drive the daemon; everyone else
// is refused by the kernel at connect(). Without the group the socket stays root's alone.
import fs from 'node:fs';
import type { Logger } from '../util/log.ts';

export const DEFAULT_SOCKET_GROUP = 'loom';

/**
 * A group's id from /etc/group (node has no getgrnam; the file is the source `groupadd` writes and the
 * format is one `name:x:gid:members` line each). undefined when there is no such group.
 */
export function groupId(name: string, groupFile = '/etc/group'): number | undefined {
  if (/^\d+$/.test(name)) return Number(name);
  let text: string;
  try {
    text = fs.readFileSync(groupFile, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const [n, , gid] = line.split(':');
    if (n === name && gid && /^\d+$/.test(gid)) return Number(gid);
  }
  return undefined;
}

/**
 * Gives the socket its owner and mode. A group named explicitly (-G) must exist; the default one may be
 * missing (then root's group, and a log line saying so), as dockerd does with `docker`.
 */
export function secureSocket(sock: string, group: string | undefined, log: Logger): void {
  const name = group ?? DEFAULT_SOCKET_GROUP;
  let gid = groupId(name);
  if (gid === undefined) {
    if (group !== undefined && group !== DEFAULT_SOCKET_GROUP) throw new Error(`can't create unix socket ${sock}: group ${group} not found`);
    log.info({ socket: sock, group: name }, 'no such group: the API socket is root\'s alone (scripts/setup creates it)');
    gid = 0;
  }
  fs.chownSync(sock, 0, gid);
  fs.chmodSync(sock, 0o660);
}
