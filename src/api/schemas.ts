// JSON bodies of the Engine API checked against the types moby decodes them into, before anything acts on
// them. moby unmarshals each body into a Go struct, so a wrong type is refused with encoding/json's words:
//   json: cannot unmarshal string into Go struct field ContainerConfigWrapper.Env of type []string
// (the innermost Go struct, then the path of JSON field names from the top, map keys and indexes left
// out; the Go type of the field). The schemas say which Go type each known field has; unknown fields pass
// (Go ignores them; refusing fields loom does not implement is the handlers' business). null is fine
// anywhere (Go leaves the zero value). Validation is Ajv's, compiled once; the schemas are plain JSON Schema
// with two annotations (goType, goStruct) that only the messages use.
import { Ajv, type ErrorObject } from 'ajv';
import { invalidParameter } from '../util/errors.ts';

type Schema = Record<string, unknown>;
const nullable = (t: string | string[]) => [...(Array.isArray(t) ? t : [t]), 'null'];

const str = (goType = 'string'): Schema => ({ type: nullable('string'), goType });
const bool = (goType = 'bool'): Schema => ({ type: nullable('boolean'), goType });
const int = (goType = 'int'): Schema => ({ type: nullable('integer'), goType });
const num = (goType = 'float64'): Schema => ({ type: nullable('number'), goType });
const list = (item: Schema, goType = `[]${String(item.goType)}`): Schema => ({ type: nullable('array'), items: item, goType });
const map = (value: Schema, goType = `map[string]${String(value.goType)}`): Schema => ({ type: nullable('object'), additionalProperties: value, goType });
const strs = list(str());
const strMap = map(str());
/**
 * strslice.StrSlice (Cmd, Entrypoint, Shell): a string or a list of strings. Its decoder falls back to a
 * string when the list fails, so a bad item is reported as the whole array not being a string.
 */
const strSlice: Schema = { type: nullable(['array', 'string']), items: { ...str(), goWhole: true }, goType: 'string' };
/** a set, as nat.PortSet or Volumes: a map whose values are (ignored) objects */
const set = (goType: string): Schema => map({ type: nullable('object'), goType: 'struct {}' }, goType);
const struct = (name: string, props: Record<string, Schema>, goType = name): Schema => ({ type: nullable('object'), goStruct: name, goType, properties: props });

const resources: Record<string, Schema> = {
  CpuShares: int('int64'), Memory: int('int64'), NanoCpus: int('int64'), CgroupParent: str(), BlkioWeight: int('uint16'),
  CpuPeriod: int('int64'), CpuQuota: int('int64'), CpuRealtimePeriod: int('int64'), CpuRealtimeRuntime: int('int64'),
  CpusetCpus: str(), CpusetMems: str(), DeviceCgroupRules: strs, KernelMemory: int('int64'), KernelMemoryTCP: int('int64'),
  MemoryReservation: int('int64'), MemorySwap: int('int64'), MemorySwappiness: int('int64'), OomKillDisable: bool(),
  PidsLimit: int('int64'), CpuCount: int('int64'), CpuPercent: int('int64'), IOMaximumIOps: int('uint64'), IOMaximumBandwidth: int('uint64'),
  Devices: list(struct('DeviceMapping', { PathOnHost: str(), PathInContainer: str(), CgroupPermissions: str() }, 'container.DeviceMapping')),
  Ulimits: list(struct('Ulimit', { Name: str(), Hard: int('int64'), Soft: int('int64') }, 'units.Ulimit')),
};

const restartPolicy = struct('RestartPolicy', { Name: str('container.RestartPolicyMode'), MaximumRetryCount: int() }, 'container.RestartPolicy');

const endpointSettings = struct('EndpointSettings', {
  IPAMConfig: struct('EndpointIPAMConfig', { IPv4Address: str(), IPv6Address: str(), LinkLocalIPs: strs }, 'network.EndpointIPAMConfig'),
  Links: strs, Aliases: strs, MacAddress: str(), DriverOpts: strMap, NetworkID: str(), EndpointID: str(), Gateway: str(),
  IPAddress: str(), IPPrefixLen: int(), IPv6Gateway: str(), GlobalIPv6Address: str(), GlobalIPv6PrefixLen: int(), DNSNames: strs,
}, 'network.EndpointSettings');

const mountSchema = struct('Mount', {
  Type: str('mount.Type'), Source: str(), Target: str(), ReadOnly: bool(), Consistency: str('mount.Consistency'),
  BindOptions: struct('BindOptions', { Propagation: str('mount.Propagation'), NonRecursive: bool(), CreateMountpoint: bool() }, 'mount.BindOptions'),
  VolumeOptions: struct('VolumeOptions', {
    NoCopy: bool(), Labels: strMap, Subpath: str(),
    DriverConfig: struct('Driver', { Name: str(), Options: strMap }, 'mount.Driver'),
  }, 'mount.VolumeOptions'),
  TmpfsOptions: struct('TmpfsOptions', { SizeBytes: int('int64'), Mode: int('fs.FileMode') }, 'mount.TmpfsOptions'),
}, 'mount.Mount');

const hostConfig = struct('HostConfig', {
  Binds: strs, ContainerIDFile: str(),
  LogConfig: struct('LogConfig', { Type: str(), Config: strMap }, 'container.LogConfig'),
  NetworkMode: str('container.NetworkMode'),
  PortBindings: map(list(struct('PortBinding', { HostIp: str(), HostPort: str() }, 'nat.PortBinding')), 'nat.PortMap'),
  RestartPolicy: restartPolicy, AutoRemove: bool(), VolumeDriver: str(), VolumesFrom: strs, ConsoleSize: list(int('uint'), '[2]uint'),
  Annotations: strMap, CapAdd: strSlice, CapDrop: strSlice, CgroupnsMode: str('container.CgroupnsMode'),
  Dns: strs, DnsOptions: strs, DnsSearch: strs, ExtraHosts: strs, GroupAdd: strs, IpcMode: str('container.IpcMode'),
  Cgroup: str('container.CgroupSpec'), Links: strs, OomScoreAdj: int(), PidMode: str('container.PidMode'), Privileged: bool(),
  PublishAllPorts: bool(), ReadonlyRootfs: bool(), SecurityOpt: strs, StorageOpt: strMap, Tmpfs: strMap, UTSMode: str('container.UTSMode'),
  UsernsMode: str('container.UsernsMode'), ShmSize: int('int64'), Sysctls: strMap, Runtime: str(), Isolation: str('container.Isolation'),
  Mounts: list(mountSchema), MaskedPaths: strs, ReadonlyPaths: strs, Init: bool(),
  ...resources,
}, 'container.HostConfig');

const healthcheck = struct('HealthConfig', {
  Test: strs, Interval: int('time.Duration'), Timeout: int('time.Duration'), StartPeriod: int('time.Duration'),
  StartInterval: int('time.Duration'), Retries: int(),
}, 'container.HealthConfig');

const containerConfig: Record<string, Schema> = {
  Hostname: str(), Domainname: str(), User: str(), AttachStdin: bool(), AttachStdout: bool(), AttachStderr: bool(),
  ExposedPorts: set('nat.PortSet'), Tty: bool(), OpenStdin: bool(), StdinOnce: bool(), Env: strs, Cmd: strSlice,
  Healthcheck: healthcheck, ArgsEscaped: bool(), Image: str(), Volumes: set('map[string]struct {}'), WorkingDir: str(),
  Entrypoint: strSlice, NetworkDisabled: bool(), MacAddress: str(), OnBuild: strs, Labels: strMap, StopSignal: str(),
  StopTimeout: int('int'), Shell: strSlice,
};

/** POST /containers/create (moby decodes runconfig.ContainerConfigWrapper: the Config fields at the top) */
const containerCreate = struct('ContainerConfigWrapper', {
  ...containerConfig,
  HostConfig: hostConfig,
  NetworkingConfig: struct('NetworkingConfig', { EndpointsConfig: map(endpointSettings, 'map[string]*network.EndpointSettings') }, 'network.NetworkingConfig'),
}, 'runconfig.ContainerConfigWrapper');

/** POST /containers/{id}/update */
const containerUpdate = struct('UpdateConfig', { ...resources, RestartPolicy: restartPolicy }, 'container.UpdateConfig');

/** POST /containers/{id}/exec */
const execCreate = struct('ExecConfig', {
  User: str(), Privileged: bool(), Tty: bool(), ConsoleSize: list(int('uint'), '[2]uint'), AttachStdin: bool(), AttachStderr: bool(),
  AttachStdout: bool(), Detach: bool(), DetachKeys: str(), Env: strs, WorkingDir: str(), Cmd: strs,
}, 'types.ExecConfig');

/** POST /exec/{id}/start */
const execStart = struct('ExecStartCheck', { Detach: bool(), Tty: bool(), ConsoleSize: list(int('uint'), '[2]uint') }, 'types.ExecStartCheck');

/** POST /networks/create */
const networkCreate = struct('NetworkCreateRequest', {
  Name: str(), CheckDuplicate: bool(), Driver: str(), Scope: str(), EnableIPv6: bool(), EnableIPv4: bool(),
  IPAM: struct('IPAM', {
    Driver: str(), Options: strMap,
    Config: list(struct('IPAMConfig', { Subnet: str(), IPRange: str(), Gateway: str(), AuxiliaryAddresses: strMap }, 'network.IPAMConfig')),
  }, 'network.IPAM'),
  Internal: bool(), Attachable: bool(), Ingress: bool(), ConfigOnly: bool(),
  ConfigFrom: struct('ConfigReference', { Network: str() }, 'network.ConfigReference'),
  Options: strMap, Labels: strMap,
}, 'types.NetworkCreateRequest');

/** POST /networks/{id}/connect */
const networkConnect = struct('NetworkConnect', { Container: str(), EndpointConfig: endpointSettings }, 'types.NetworkConnect');
/** POST /networks/{id}/disconnect */
const networkDisconnect = struct('NetworkDisconnect', { Container: str(), Force: bool() }, 'types.NetworkDisconnect');

/** POST /volumes/create (the volumes part validates its own values; these are the types) */
const volumeCreate = struct('CreateOptions', { Name: str(), Driver: str(), DriverOpts: strMap, Labels: strMap }, 'volume.CreateOptions');

export const SCHEMAS = { containerCreate, containerUpdate, execCreate, execStart, networkCreate, networkConnect, networkDisconnect, volumeCreate };
export type BodyKind = keyof typeof SCHEMAS;

// every error, so that the one reported is the first in the document, as Go's decoder meets them
const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true });
ajv.addKeyword({ keyword: 'goType', schemaType: 'string' });
ajv.addKeyword({ keyword: 'goStruct', schemaType: 'string' });
ajv.addKeyword({ keyword: 'goWhole', schemaType: 'boolean' });
const compiled = Object.fromEntries(Object.entries(SCHEMAS).map(([k, s]) => [k, ajv.compile(s)])) as Record<BodyKind, ReturnType<typeof ajv.compile>>;

/** encoding/json's name for the kind of a JSON value in its messages ("number 1.5" for a number that is no integer). */
function jsonKind(v: unknown, wantInteger: boolean): string {
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return wantInteger && !Number.isSafeInteger(v) ? `number ${JSON.stringify(v)}` : 'number';
  return typeof v; // string, object
}

/** Go's message for the first type error Ajv found, walking the schema along its path. */
function goMessage(root: Schema, err: ErrorObject): string {
  const segs = err.instancePath.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  let node: Schema = root;
  let structName: string | undefined;
  const fields: string[] = [];
  let whole: unknown;
  for (const [i, seg] of segs.entries()) {
    const props = node.properties as Record<string, Schema> | undefined;
    if ((node.items as Schema | undefined)?.goWhole && i === segs.length - 1) {
      whole = 'array'; // a StrSlice item: the slice as a whole is reported
      break;
    }
    if (node.goStruct && props && Object.hasOwn(props, seg)) {
      structName = node.goStruct as string;
      fields.push(seg);
      node = props[seg]!;
    } else if (node.additionalProperties && typeof node.additionalProperties === 'object') {
      node = node.additionalProperties as Schema;
    } else if (node.items) {
      node = node.items as Schema;
    }
  }
  const target = whole ? node : (err.parentSchema as Schema | undefined) ?? node;
  const types = target.type as string[] | undefined;
  const kind = whole ? 'array' : jsonKind(err.data, !!types?.includes('integer'));
  const goType = String(target.goType);
  if (!fields.length) return `json: cannot unmarshal ${kind} into Go value of type ${goType}`;
  return `json: cannot unmarshal ${kind} into Go struct field ${structName}.${fields.join('.')} of type ${goType}`;
}

/** The error whose value comes first in the document (JSON.parse keeps the keys' order). */
function firstInDocument(body: unknown, errs: ErrorObject[]): ErrorObject {
  const position = (e: ErrorObject) => {
    const out: number[] = [];
    let v: any = body;
    for (const seg of e.instancePath.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))) {
      out.push(Array.isArray(v) ? Number(seg) : Object.keys(v ?? {}).indexOf(seg));
      v = v?.[seg];
    }
    return out;
  };
  const before = (a: number[], b: number[]) => {
    for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! < b[i]!;
    return a.length < b.length;
  };
  let best = errs[0]!;
  let bestPos = position(best);
  for (const e of errs.slice(1)) {
    const p = position(e);
    if (before(p, bestPos)) [best, bestPos] = [e, p];
  }
  return best;
}

/**
 * The body, checked against the type moby decodes it into: a 400 with encoding/json's words for the first
 * field of the wrong type. An absent body is an empty object, as the handlers take it.
 */
export function validateBody<T = any>(kind: BodyKind, body: unknown): T {
  if (body === undefined || body === null) return {} as T;
  const validate = compiled[kind];
  if (!validate(body)) throw invalidParameter(goMessage(SCHEMAS[kind], firstInDocument(body, validate.errors!)));
  return body as T;
}
