// Fields of a ContainerCreate body loom does not implement: refused naming them when set to anything but
// their zero value (or the value that means "Docker's default"), never dropped silently. The clients send
// many zero values (the docker CLI 28 sends most HostConfig fields, docker-compose 1.29 and docker-py
// send nulls and empty lists): those are accepted. Unknown fields are ignored, as dockerd's JSON decoding
// ignores them.
import { invalidParameter } from '../util/errors.ts';

type Check = (v: unknown) => boolean; // true: acceptable

const zero: Check = (v) =>
  v === undefined || v === null || v === false || v === 0 || v === '' ||
  (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && !Array.isArray(v) && Object.keys(v as object).length === 0);
const oneOf = (...ok: unknown[]): Check => (v) => zero(v) || ok.includes(v);

/** HostConfig fields loom does not implement, and what of them is still fine. */
const HOST_CONFIG: Record<string, Check> = {
  CpuShares: zero, Memory: zero, CgroupParent: zero, BlkioWeight: zero, BlkioWeightDevice: zero,
  BlkioDeviceReadBps: zero, BlkioDeviceWriteBps: zero, BlkioDeviceReadIOps: zero, BlkioDeviceWriteIOps: zero,
  CpuPeriod: zero, CpuQuota: zero, CpuRealtimePeriod: zero, CpuRealtimeRuntime: zero, CpusetCpus: zero, CpusetMems: zero,
  Devices: zero, DeviceCgroupRules: zero, DeviceRequests: zero, KernelMemory: zero, KernelMemoryTCP: zero,
  MemoryReservation: zero, MemorySwap: zero, MemorySwappiness: oneOf(-1), NanoCpus: zero, OomKillDisable: zero,
  PidsLimit: oneOf(-1), Ulimits: zero, CpuCount: zero, CpuPercent: zero, IOMaximumIOps: zero, IOMaximumBandwidth: zero,
  VolumeDriver: oneOf('local'), Annotations: zero, CapAdd: zero, CapDrop: zero,
  // loom's containers have a cgroup namespace of their host's kind, an IPC namespace of their own
  CgroupnsMode: oneOf('private', 'host'), GroupAdd: zero, IpcMode: oneOf('private', 'shareable'), Cgroup: zero,
  OomScoreAdj: zero, PidMode: zero, Privileged: zero, ReadonlyRootfs: zero, SecurityOpt: zero, StorageOpt: zero,
  UTSMode: zero, UsernsMode: zero, ShmSize: oneOf(67108864), Sysctls: zero, Runtime: oneOf('runc'), Isolation: oneOf('default'),
  MaskedPaths: zero, ReadonlyPaths: zero,
  LogConfig: (v) => {
    if (zero(v)) return true;
    // json-file and its options (max-size, max-file...) are loom's: the API checks them (configcheck.ts)
    const l = v as { Type?: string; Config?: Record<string, string> | null };
    return !l.Type || l.Type === 'json-file';
  },
};

/** Config (the body's top level) fields loom does not implement. */
const CONFIG: Record<string, Check> = {
  Healthcheck: (v) => zero(v) || zero((v as { Test?: unknown }).Test) || JSON.stringify((v as { Test?: unknown }).Test) === '["NONE"]',
  NetworkDisabled: zero, Shell: zero, OnBuild: zero,
};

/** EndpointSettings fields loom does not implement (Links, Aliases, IPAMConfig addresses, MacAddress it does). */
const ENDPOINT: Record<string, Check> = {
  DriverOpts: zero, GwPriority: zero,
  IPAMConfig: (v) => zero(v) || zero((v as { LinkLocalIPs?: unknown }).LinkLocalIPs),
};

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Throws a 400 naming the first field set that loom does not implement. */
export function refuseUnsupported(body: Record<string, unknown>): void {
  for (const [k, ok] of Object.entries(CONFIG)) {
    if (k in body && !ok(body[k])) throw invalidParameter(`${k} is not supported by loom (set to ${describe(body[k])})`);
  }
  const eps = ((body.NetworkingConfig as { EndpointsConfig?: Record<string, Record<string, unknown> | null> } | null)?.EndpointsConfig ?? {});
  for (const [net, ep] of Object.entries(eps)) {
    for (const [k, ok] of Object.entries(ENDPOINT)) {
      if (ep && k in ep && !ok(ep[k])) throw invalidParameter(`NetworkingConfig.EndpointsConfig.${net}.${k} is not supported by loom (set to ${describe(ep[k])})`);
    }
  }
  const hc = (body.HostConfig ?? {}) as Record<string, unknown>;
  for (const [k, ok] of Object.entries(HOST_CONFIG)) {
    if (k in hc && !ok(hc[k])) throw invalidParameter(`HostConfig.${k} is not supported by loom (set to ${describe(hc[k])})`);
  }
}
