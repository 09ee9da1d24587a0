/** The server extension's routes, typed; every call goes through requestAPI. */
import { requestAPI } from './handler';
import {
  IBuiltinModel,
  IBuiltinRequest,
  IConfig,
  IDataset,
  IImage,
  IJobRow,
  ILogs,
  IOverview,
  ISubmitRequest,
  ITraining,
  IWorkspace,
  MetricRecord
} from './tokens';

const post = (body?: unknown): RequestInit => ({
  method: 'POST',
  body: body === undefined ? undefined : JSON.stringify(body)
});
const q = encodeURIComponent;

export const config = () => requestAPI<IConfig>('config');
export const workspaces = () => requestAPI<IWorkspace[]>('workspaces');
export const overview = (ws: string) => requestAPI<IOverview>(`overview?workspace=${q(ws)}`);
export const datasets = (ws: string) => requestAPI<IDataset[]>(`workspaces/${q(ws)}/datasets`);
export const images = (ws: string) => requestAPI<IImage[]>(`workspaces/${q(ws)}/images`);
export const builtinModels = () => requestAPI<IBuiltinModel[]>('builtin-models');

export const submit = (body: ISubmitRequest) => requestAPI<ITraining>('trainings', post(body));
export const submitBuiltin = (body: IBuiltinRequest) => requestAPI<ITraining>('builtin-trainings', post(body));

export type TrainingAction = 'cancel' | 'retry' | 'pause' | 'resume' | 'resubmit';
export const trainingAction = (id: string, action: TrainingAction) =>
  requestAPI<ITraining>(`trainings/${q(id)}/${action}`, post());

export const job = (id: string) => requestAPI<IJobRow>(`jobs/${q(id)}`);
export const logs = (id: string) => requestAPI<ILogs>(`jobs/${q(id)}/logs`);
export const metrics = (id: string) => requestAPI<MetricRecord[]>(`jobs/${q(id)}/metrics`);
export const cancelJob = (id: string) => requestAPI<IJobRow>(`jobs/${q(id)}/cancel`, post());
