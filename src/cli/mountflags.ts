// run/create's -v, --mount, --tmpfs and --volumes-from as the docker CLI turns them into a request:
// -v with a destination only is an anonymous volume (Config.Volumes), the rest goes to HostConfig.Binds
// (a host path starting with "." made absolute, as docker 28 does); --mount's CSV becomes a Mount object;
// --tmpfs DEST[:OPTS] a HostConfig.Tmpfs entry. The daemon validates the rest, with the same words for
// every client.
import path from 'node:path';
import { UsageError } from './flags.ts';

const bad = (flag: string, v: string, msg: string) => new UsageError(`invalid argument "${v}" for "${flag}" flag: ${msg}`);

/** go-units RAMInBytes: 64m, 1g, 512k, 1024 (binary units). */
export function ramInBytes(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtpKMGTP]?)(i?[bB])?$/.exec(s.trim());
  if (!m) throw new Error(`invalid size: '${s}'`);
  const mul = { '': 1, k: 1 << 10, m: 1 << 20, g: 1 << 30, t: 2 ** 40, p: 2 ** 50 }[m[2]!.toLowerCase() as '' | 'k'];
  return Math.trunc(Number(m[1]) * mul);
}

function parseBool(flag: string, v: string, key: string): boolean {
  if (/^(1|t|T|TRUE|true|True)$/.test(v)) return true;
  if (/^(0|f|F|FALSE|false|False)$/.test(v)) return false;
  throw bad(flag, v, `invalid value for ${key}: ${v}`);
}

/** One --mount value (docker's opts.MountOpt.Set). */
export function parseMountFlag(value: string): Record<string, any> {
  const flag = '--mount';
  const m: Record<string, any> = {};
  const bindOpts = () => (m.BindOptions ??= {});
  const volOpts = () => (m.VolumeOptions ??= {});
  const tmpfsOpts = () => (m.TmpfsOptions ??= {});
  let type = 'volume';
  const fields = value.split(',').filter((x) => x !== '');
  for (const field of fields) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
    const val = eq < 0 ? undefined : field.slice(eq + 1);
    if (val === undefined) {
      if (key === 'readonly' || key === 'ro') { m.ReadOnly = true; continue; }
      if (key === 'volume-nocopy') { volOpts().NoCopy = true; continue; }
      if (key === 'bind-nonrecursive') { bindOpts().NonRecursive = true; continue; }
      throw bad(flag, value, `invalid field '${field}' must be a key=value pair`);
    }
    switch (key) {
      case 'type': type = val; m.Type = val; break;
      case 'source': case 'src': m.Source = val; break;
      case 'target': case 'dst': case 'destination': m.Target = val; break;
      case 'readonly': case 'ro': m.ReadOnly = parseBool(flag, val, key); break;
      case 'consistency': m.Consistency = val; break;
      case 'bind-propagation': bindOpts().Propagation = val.toLowerCase(); break;
      case 'bind-nonrecursive': bindOpts().NonRecursive = parseBool(flag, val, key); break;
      case 'bind-create-src': bindOpts().CreateMountpoint = parseBool(flag, val, key); break;
      case 'volume-nocopy': volOpts().NoCopy = parseBool(flag, val, key); break;
      case 'volume-label': {
        const i = val.indexOf('=');
        (volOpts().Labels ??= {})[i < 0 ? val : val.slice(0, i)] = i < 0 ? '' : val.slice(i + 1);
        break;
      }
      case 'volume-driver': (volOpts().DriverConfig ??= {}).Name = val; break;
      case 'volume-opt': {
        const i = val.indexOf('=');
        ((volOpts().DriverConfig ??= {}).Options ??= {})[i < 0 ? val : val.slice(0, i)] = i < 0 ? '' : val.slice(i + 1);
        break;
      }
      case 'volume-subpath': volOpts().Subpath = val; break;
      case 'tmpfs-size':
        try {
          tmpfsOpts().SizeBytes = ramInBytes(val);
        } catch {
          throw bad(flag, value, `invalid value for ${key}: ${val}`);
        }
        break;
      case 'tmpfs-mode': {
        if (!/^[0-7]+$/.test(val)) throw bad(flag, value, `invalid value for ${key}: ${val}`);
        tmpfsOpts().Mode = parseInt(val, 8);
        break;
      }
      default:
        throw bad(flag, value, `unexpected key '${key}' in '${field}'`);
    }
  }
  m.Type = type;
  if (!m.Target) throw bad(flag, value, 'target is required');
  if (m.VolumeOptions && type !== 'volume') throw bad(flag, value, `cannot mix 'volume-*' options with mount type '${type}'`);
  if (m.BindOptions && type !== 'bind') throw bad(flag, value, `cannot mix 'bind-*' options with mount type '${type}'`);
  if (m.TmpfsOptions && type !== 'tmpfs') throw bad(flag, value, `cannot mix 'tmpfs-*' options with mount type '${type}'`);
  return m;
}

export interface MountFlags {
  Volumes: Record<string, object>;
  Binds: string[];
  Mounts: Record<string, any>[];
  Tmpfs: Record<string, string>;
  VolumesFrom: string[];
}

export function mountFlags(fl: { volume: string[]; mount: string[]; tmpfs: string[]; 'volumes-from': string[] }): MountFlags {
  const out: MountFlags = { Volumes: {}, Binds: [], Mounts: [], Tmpfs: {}, VolumesFrom: fl['volumes-from'] };
  for (const v of fl.volume) {
    if (!v) throw bad('-v, --volume', v, 'bad format for path: ');
    if (!v.includes(':')) {
      out.Volumes[v] = {};
      continue;
    }
    const i = v.indexOf(':');
    let host = v.slice(0, i);
    if (host.startsWith('.') && !path.isAbsolute(host)) host = path.resolve(host);
    out.Binds.push(`${host}${v.slice(i)}`);
  }
  for (const m of fl.mount) out.Mounts.push(parseMountFlag(m));
  for (const t of fl.tmpfs) {
    const i = t.indexOf(':');
    out.Tmpfs[i < 0 ? t : t.slice(0, i)] = i < 0 ? '' : t.slice(i + 1);
  }
  return out;
}
