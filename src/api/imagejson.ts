// Docker-shaped JSON for images (GET /images/json, /images/{name}/json), as dockerd 20.10 writes it:
// docker-compose 1.29 reads ContainerConfig (and its Volumes), so it is there, zero-valued when the image
// has none.
import path from 'node:path';
import type { ImageRecord } from '../core/types.ts';
import type { Images } from '../core/images.ts';
import type { ImageConfigJson } from '../images/store.ts';
import { ZERO_TIME } from '../core/names.ts';

/** Go's container.Config with its field order and omitempty rules. */
export function containerConfigJson(c: Record<string, unknown> | null | undefined): Record<string, unknown> {
  const v = c ?? {};
  const out: Record<string, unknown> = {
    Hostname: v.Hostname ?? '', Domainname: v.Domainname ?? '', User: v.User ?? '',
    AttachStdin: v.AttachStdin ?? false, AttachStdout: v.AttachStdout ?? false, AttachStderr: v.AttachStderr ?? false,
  };
  if (v.ExposedPorts && Object.keys(v.ExposedPorts).length) out.ExposedPorts = v.ExposedPorts;
  Object.assign(out, { Tty: v.Tty ?? false, OpenStdin: v.OpenStdin ?? false, StdinOnce: v.StdinOnce ?? false, Env: v.Env ?? null, Cmd: v.Cmd ?? null });
  if (v.Healthcheck) out.Healthcheck = v.Healthcheck;
  if (v.ArgsEscaped) out.ArgsEscaped = v.ArgsEscaped;
  Object.assign(out, { Image: v.Image ?? '', Volumes: v.Volumes ?? null, WorkingDir: v.WorkingDir ?? '', Entrypoint: v.Entrypoint ?? null });
  if (v.NetworkDisabled) out.NetworkDisabled = v.NetworkDisabled;
  if (v.MacAddress) out.MacAddress = v.MacAddress;
  Object.assign(out, { OnBuild: v.OnBuild ?? null, Labels: v.Labels ?? null });
  if (v.StopSignal) out.StopSignal = v.StopSignal;
  if (v.StopTimeout !== undefined && v.StopTimeout !== null) out.StopTimeout = v.StopTimeout;
  if (v.Shell) out.Shell = v.Shell;
  return out;
}

export function inspectImage(images: Images, i: ImageRecord) {
  const cfg = JSON.parse(i.configJson ?? JSON.stringify({ config: i.config, created: i.created })) as ImageConfigJson;
  const dirs = (i.layers ?? []).map((d) => path.join(images.store.root, 'layers', d.slice(7)));
  const top = dirs[dirs.length - 1];
  const lower = dirs.slice(0, -1).reverse().map((d) => `${d}/diff`).join(':');
  return {
    Id: i.id,
    RepoTags: images.tagsOf(i.id),
    RepoDigests: images.digestsOf(i.id),
    Parent: i.parent,
    Comment: cfg.comment ?? '',
    Created: cfg.created ?? ZERO_TIME,
    Container: cfg.container ?? '',
    ContainerConfig: containerConfigJson(cfg.container_config),
    DockerVersion: cfg.docker_version ?? '',
    Author: cfg.author ?? '',
    Config: containerConfigJson(cfg.config as Record<string, unknown>),
    Architecture: cfg.architecture ?? 'amd64',
    ...(cfg.variant ? { Variant: cfg.variant } : {}),
    Os: cfg.os ?? 'linux',
    Size: i.size,
    VirtualSize: i.size,
    GraphDriver: {
      Data: { ...(lower ? { LowerDir: lower } : {}), MergedDir: `${top}/merged`, UpperDir: `${top}/diff`, WorkDir: `${top}/work` },
      Name: 'overlay2',
    },
    RootFS: { Type: 'layers', Layers: i.layers ?? [] },
    Metadata: { LastTagTime: i.lastTagTime ?? ZERO_TIME },
  };
}

export function listImage(i: ImageRecord, tags: string[], digests: string[]) {
  return {
    Containers: -1,
    Created: Math.floor(Date.parse(i.created) / 1000),
    Id: i.id,
    Labels: i.config.Labels ?? null,
    ParentId: i.parent,
    RepoDigests: digests,
    RepoTags: tags,
    SharedSize: -1,
    Size: i.size,
    VirtualSize: i.size,
  };
}
