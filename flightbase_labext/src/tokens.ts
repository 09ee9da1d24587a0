/**
 * The bodies the server extension answers (one typed definition each) and the
 * error it raises. No JupyterLab imports: the unit tests load this as it is.
 */

export interface IConfig {
  workspace: string | null; // FLIGHTBASE_WORKSPACE of this server (set by the spawner)
  lease: string | null; // FLIGHTBASE_LEASE_ID: this server's GPU lease (a job of kind "lease"), if it has one
  user: string;
  version: string;
  gpu_kind: 'gpu' | 'cpu-slot' | 'none';
}

export interface IWorkspace {
  name: string;
  members: string[];
  managers: string[];
  settings: { gpu_quota?: number | null; [key: string]: unknown } | null;
  permissions: string[];
}

export interface IQueueRow {
  id: string;
  name: string;
  training_id: string;
  gpus: number;
  created_by: string;
  position: number | null;
  workspace_position: number | null;
  estimated_start: number | null; // seconds since the epoch
  reason: string;
}

export type JobState = 'queued' | 'starting' | 'running' | 'preempted' | 'succeeded' | 'failed' | 'cancelled';

export interface IJobRow {
  id: string;
  name: string;
  training_id: string;
  state: JobState;
  gpus: number;
  submitted_at: number;
  started_at: number | null;
  finished_at: number | null;
  exit_code: number | null;
  reason: string | null;
  metrics: { [name: string]: number };
}

export interface ITrainingRow {
  id: string;
  name: string;
  kind: string;
  state: string;
  created_at: string;
  progress: { [state: string]: number };
  spec: { [key: string]: unknown };
}

export interface IOverview {
  workspace: string;
  gpus_in_use: number;
  gpu_quota: number | null;
  queue: IQueueRow[];
  trainings: ITrainingRow[];
  jobs: IJobRow[];
}

export interface ITraining {
  id: string;
  workspace: string;
  name: string;
  state: string;
  jobs: { id: string; name: string; state: string }[];
}

export interface ILogs {
  text: string;
  truncated: boolean;
}

export type MetricRecord = { [name: string]: number };

export interface IParameter {
  type: 'integer' | 'number' | 'string' | 'boolean';
  default: unknown;
  minimum?: number | null;
  maximum?: number | null;
  enum?: unknown[] | null;
  maxLength?: number | null;
  help: string;
}

export interface IBuiltinModel {
  name: string;
  title: string;
  task: string;
  description: string;
  entrypoint: string;
  dataset: { layout: string; example: string[] } | null;
  parameters: { [name: string]: IParameter };
  gpus: { default: number; max: number };
  launchers: string[];
  gpu_options: string[];
}

export interface IDataset {
  name: string;
  [key: string]: unknown;
}

export interface IImage {
  name: string;
  reference?: string;
  [key: string]: unknown;
}

/** The body of POST /flightbase/trainings: a file or folder of this server and the trainings API's fields. */
export interface ISubmitRequest {
  workspace: string;
  path: string;
  name?: string;
  entrypoint?: string;
  args: string[];
  gpus: number;
  gpus_per_node?: number;
  launcher: string;
  image: string;
  datasets: string[];
  env: { [key: string]: string };
  max_runtime?: number;
  gpudirect_p2p: boolean;
  gpudirect_rdma: boolean;
  /** ``grid``: JSON, or the text of flightbase/grid.py's grammar (`lr=[0.1,0.01] batch=[32,64]`). */
  sweep?: { grid: { [name: string]: (string | number | boolean)[] } | string; parallel: number };
}

/** The body of POST /flightbase/builtin-trainings. */
export interface IBuiltinRequest {
  workspace: string;
  name: string;
  model: string;
  dataset?: string;
  params: { [name: string]: unknown };
  gpus: number;
  launcher: string;
  options: { [name: string]: unknown };
  image: string;
  max_runtime?: number;
}

/** An error answer: the services' 4xx bodies name the field(s) they concern. */
export class FlightbaseError extends Error {
  readonly status: number;
  readonly field: string | null;
  readonly errors: { [field: string]: string };

  constructor(status: number, body: unknown) {
    const b = (body && typeof body === 'object' ? body : { message: String(body || '') }) as {
      message?: string;
      field?: string;
      errors?: { [field: string]: string };
    };
    super(b.message || `request failed (${status})`);
    this.status = status;
    this.field = b.field || null;
    this.errors = b.errors || (b.field ? { [b.field]: this.message } : {});
  }
}
