// What the builder needs from the rest of loom, as a small interface: find an image, run a command in a
// container made from one (and get its filesystem changes as a layer tar), commit a new image from a
// parent, an optional layer and a config, tag, and a cache index. The daemon implements it
// (daemon-backend.ts) over its image store and container controller; the builder itself never touches them.
import type { Readable } from 'node:stream';

export interface HealthConfig {
  Test: string[];
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  StartInterval?: number;
  Retries?: number;
}

/** An image's config as Docker's image spec has it (the parts a Dockerfile sets). */
export interface ImageConfig {
  User: string;
  ExposedPorts: Record<string, object> | null;
  Env: string[];
  Cmd: string[] | null;
  Entrypoint: string[] | null;
  Volumes: Record<string, object> | null;
  WorkingDir: string;
  Labels: Record<string, string> | null;
  OnBuild: string[] | null;
  StopSignal?: string;
  Shell?: string[];
  Healthcheck?: HealthConfig;
  ArgsEscaped?: boolean;
}

export interface HistoryEntry {
  created: string;
  created_by: string;
  empty_layer?: boolean;
  comment?: string;
  author?: string;
}

export interface BuildImage {
  id: string;
  config: ImageConfig;
  /** a directory with the image's whole filesystem (read-only for the builder), absent for scratch */
  rootfs: string | null;
}

export interface RunSpec {
  cmd: string[];
  env: string[];
  workdir: string;
  user: string;
  networkMode: string;
  extraHosts: string[];
}

export interface RunResult {
  containerId: string;
  exitCode: number;
  /** the container's filesystem changes as a layer tar */
  diff(): Readable;
  remove(): Promise<void>;
}

export interface CommitRequest {
  parent: BuildImage | null;
  layer: Readable | null;
  config: ImageConfig;
  createdBy: string;
  comment?: string;
  author?: string;
}

export interface BuildBackend {
  findImage(ref: string): BuildImage | undefined;
  /** pulls `ref` from its registry (progress as the Engine API's JSON messages); throws Docker's pull errors */
  pullImage?(ref: string, progress: (message: object) => void): Promise<BuildImage | undefined>;
  /** runs cmd in a new container of `image`, output to `out` as it comes */
  run(image: BuildImage, spec: RunSpec, out: (chunk: Buffer) => void, created?: (containerId: string) => void): Promise<RunResult>;
  commit(req: CommitRequest): Promise<BuildImage>;
  /** a container made (not started) for a metadata step, as the classic builder makes one */
  probe?(image: BuildImage, createdBy: string): Promise<{ containerId: string; remove(): Promise<void> }>;
  tag(id: string, ref: string): void;
  /** validates a reference (for `t`): throws with Docker's message */
  checkTag(ref: string): string;
  cacheGet(key: string): BuildImage | undefined;
  cacheSet(key: string, imageId: string): void;
}

export function emptyConfig(): ImageConfig {
  return { User: '', ExposedPorts: null, Env: [], Cmd: null, Entrypoint: null, Volumes: null, WorkingDir: '', Labels: null, OnBuild: null };
}
