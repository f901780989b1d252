// Finding legacy ("v1") plugins the way Docker's pkg/plugins does: a unix socket NAME.sock (or
// NAME/NAME.sock) in the sockets directory, else a spec file NAME.spec (one URL: unix:///path.sock,
// tcp://host:port) or NAME.json ({"Name","Addr","TLSConfig"}) in the spec directories. loom takes one
// list of directories (the daemon's --plugins-dir, Docker's three places by default) and looks for
// sockets in all of them first, then for spec files.
import fs from 'node:fs';
import path from 'node:path';

export const DEFAULT_PLUGIN_DIRS = ['/run/docker/plugins', '/etc/docker/plugins', '/usr/lib/docker/plugins'];

export interface PluginTls {
  InsecureSkipVerify?: boolean;
  CAFile?: string;
  CertFile?: string;
  KeyFile?: string;
}

export interface PluginAddress {
  name: string;
  /** unix:///run/docker/plugins/x.sock, tcp://127.0.0.1:8080, http(s)://host:port */
  addr: string;
  tls?: PluginTls;
  /** the file it was found through */
  source: string;
}

/** Plugin names are file names: nothing that could leave the directory. */
const VALID = /^[A-Za-z0-9][A-Za-z0-9_.:@-]*$/;

const candidates = (dir: string, name: string, ext: string) => [path.join(dir, name + ext), path.join(dir, name, name + ext)];

function isSocket(p: string): boolean {
  try {
    return fs.statSync(p).isSocket();
  } catch {
    return false;
  }
}

/** The plugin NAME's address, or null when no socket or spec file has that name. Throws on a broken spec. */
export function findPlugin(name: string, dirs: string[]): PluginAddress | null {
  if (!VALID.test(name) || name.includes('..')) return null;
  for (const d of dirs) {
    for (const p of candidates(d, name, '.sock')) if (isSocket(p)) return { name, addr: `unix://${p}`, source: p };
  }
  for (const d of dirs) {
    for (const ext of ['.spec', '.json']) {
      for (const p of candidates(d, name, ext)) {
        if (!fs.existsSync(p)) continue;
        return ext === '.json' ? readJsonSpec(name, p) : readSpec(name, p);
      }
    }
  }
  return null;
}

/** A .spec file: one URL with a scheme (Docker: "Unknown protocol" without one). */
export function readSpec(name: string, p: string): PluginAddress {
  const addr = fs.readFileSync(p, 'utf8').trim();
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(addr)) throw new Error(`plugin ${name} (${p}): Unknown protocol`);
  return { name, addr, source: p };
}

/** A .json spec: {"Name": ..., "Addr": "https://...", "TLSConfig": {...}}; TLS without a CA skips verification, as Docker. */
export function readJsonSpec(name: string, p: string): PluginAddress {
  let spec: { Addr?: string; TLSConfig?: PluginTls | null };
  try {
    spec = JSON.parse(fs.readFileSync(p, 'utf8'));
  } catch (e) {
    throw new Error(`plugin ${name} (${p}): ${(e as Error).message}`);
  }
  if (!spec.Addr) throw new Error(`plugin ${name} (${p}): no Addr`);
  const tls = spec.TLSConfig ? { ...spec.TLSConfig, InsecureSkipVerify: spec.TLSConfig.InsecureSkipVerify || !spec.TLSConfig.CAFile } : undefined;
  return { name, addr: spec.Addr, ...(tls ? { tls } : {}), source: p };
}

/** Every plugin name the directories offer (sockets and spec files), as Docker's Scan. */
export function scanPlugins(dirs: string[]): string[] {
  const names = new Set<string>();
  for (const d of dirs) {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const full = path.join(d, e.name);
      if (e.isDirectory()) {
        if (isSocket(path.join(full, `${e.name}.sock`)) || ['.spec', '.json'].some((x) => fs.existsSync(path.join(full, e.name + x)))) names.add(e.name);
        continue;
      }
      const ext = path.extname(e.name);
      if ((ext === '.sock' && isSocket(full)) || ext === '.spec' || ext === '.json') names.add(path.basename(e.name, ext));
    }
  }
  return [...names].sort();
}
