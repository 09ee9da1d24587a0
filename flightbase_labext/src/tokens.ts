/**
 * The bodies the server extension answers (one typed definition each) and the
 * error it raises, written in terms of the services' generated types. No
 * JupyterLab imports: the unit tests load this as it is.
 */

import type { components as JobqueueSchemas } from './generated/jobqueue';
import type { components as RegistrySchemas } from './generated/registry';

// The services' own bodies, generated from their OpenAPI documents (scripts/openapi_types.py):
// the types below are written in terms of these, so a field a service renames or drops
// fails this build, and tests/labext/test_openapi_types.py fails when they were not regenerated.
type JQ = JobqueueSchemas['schemas'];
type Job = JQ['JobOut'];
type QueueInfo = JQ['QueueInfo'];
type Training = JQ['TrainingOut'];
type TrainingCreate = JQ['TrainingCreate'];
type BuiltinCreate = JQ['BuiltinTrainingCreate'];

export interface IConfig {
  workspace: string | null; // FLIGHTBASE_WORKSPACE of this server (set by the spawner)
  lease: string | null; // FLIGHTBASE_LEASE_ID: this server's GPU lease (a job of kind "lease"), if it has one
  user: JQ['InfoOut']['user'];
  version: string;
  gpu_kind: JQ['InfoOut']['gpu_kind'];
}

export interface IWorkspace extends Pick<JQ['WorkspaceOut'], 'name' | 'members' | 'managers' | 'permissions'> {
  settings: { gpu_quota?: number | null; [key: string]: unknown } | null;
}

/** flightbase_labext/views.py queue_row: a queued job with its place (JobOut and its QueueInfo, flattened). */
export interface IQueueRow extends Pick<Job, 'id' | 'name' | 'training_id' | 'gpus' | 'created_by'> {
  position: QueueInfo['position'] | null;
  workspace_position: QueueInfo['workspace_position'] | null;
  estimated_start: QueueInfo['estimated_start']; // seconds since the epoch
  estimated_start_range?: QueueInfo['estimated_start_range']; // [earliest, latest], seconds since the epoch
  reason: string;
}

/** JobOut's state (a string in the schema; these are flightbase_jobqueue/states.py's values). */
export type JobState = 'queued' | 'starting' | 'running' | 'preempted' | 'succeeded' | 'failed' | 'cancelled';

/** flightbase_labext/views.py job_row. */
export interface IJobRow
  extends Pick<Job, 'id' | 'name' | 'training_id' | 'gpus' | 'submitted_at' | 'started_at' | 'finished_at' | 'exit_code' | 'reason'> {
  state: JobState;
  metrics: NonNullable<Job['metrics']>;
}

export interface ITrainingRow extends Pick<Training, 'id' | 'name' | 'kind' | 'state' | 'created_at' | 'spec'> {
  progress: NonNullable<Training['progress']>;
}

export interface IOverview {
  workspace: string;
  gpus_in_use: number;
  gpu_quota: number | null;
  queue: IQueueRow[];
  trainings: ITrainingRow[];
  jobs: IJobRow[];
}

export interface ITraining extends Pick<Training, 'id' | 'workspace' | 'name' | 'state'> {
  jobs: Pick<JQ['JobSummary'], 'id' | 'name' | 'state'>[];
}

export interface ILogs {
  text: string;
  truncated: boolean;
}

export type MetricRecord = { [name: string]: number };

export type IParameter = JQ['ParameterOut'];

export type IBuiltinModel = JQ['BuiltinModelOut'];

export type IDataset = RegistrySchemas['schemas']['DatasetOut'];

export type IImage = RegistrySchemas['schemas']['ImageOut'];

/** The body of POST /flightbase/trainings: a file or folder of this server and the trainings API's fields. */
export interface ISubmitRequest {
  workspace: TrainingCreate['workspace'];
  path: string;
  name?: TrainingCreate['name'];
  entrypoint?: TrainingCreate['entrypoint'];
  args: NonNullable<TrainingCreate['args']>;
  gpus: TrainingCreate['gpus'];
  gpus_per_node?: NonNullable<TrainingCreate['gpus_per_node']>;
  launcher: string; // one of TrainingCreate['launcher']: the form's choice, checked by the service (a 4xx naming the field)
  image: TrainingCreate['image'];
  datasets: NonNullable<TrainingCreate['datasets']>;
  env: NonNullable<TrainingCreate['env']>;
  max_runtime?: NonNullable<TrainingCreate['max_runtime']>;
  gpudirect_p2p: TrainingCreate['gpudirect_p2p'];
  gpudirect_rdma: TrainingCreate['gpudirect_rdma'];
  /** ``grid``: JSON, or the text of client/flightbase/grid.py's grammar (`lr=[0.1,0.01] batch=[32,64]`). */
  sweep?: Pick<JQ['SweepSpec'], 'parallel'> & { grid: NonNullable<JQ['SweepSpec']['grid']> };
}

/** The body of POST /flightbase/builtin-trainings. */
export interface IBuiltinRequest {
  workspace: BuiltinCreate['workspace'];
  name: BuiltinCreate['name'];
  model: BuiltinCreate['model'];
  dataset?: NonNullable<BuiltinCreate['dataset']>;
  params: NonNullable<BuiltinCreate['params']>;
  gpus: NonNullable<BuiltinCreate['gpus']>;
  launcher: string; // one of BuiltinCreate['launcher'], checked by the service
  options: { [name in keyof NonNullable<BuiltinCreate['options']>]?: unknown }; // the form's values, checked by the service
  image: BuiltinCreate['image'];
  max_runtime?: NonNullable<BuiltinCreate['max_runtime']>;
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
