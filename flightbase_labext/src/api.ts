/** The server extension's routes, typed; every call goes through requestAPI. */
import { requestAPI } from './handler';
import {
  FlightbaseError,
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

/**
 * A new idempotency key: a random (version 4) UUID. Made with crypto.getRandomValues,
 * which browsers give on plain http too (crypto.randomUUID needs a secure context).
 */
export function newKey(): string {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, x => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Statuses of an answer that did not come from the services (a proxy's), safe to retry with the key. */
const RETRY_STATUSES = [502, 503, 504];

/**
 * POST a creation with an Idempotency-Key, and send it again with the same key when
 * the answer is lost (a network error) or a proxy's 502/503/504, up to `retries`
 * times after 0.5, 1, 2 s: a retry gets the training the first request created, never
 * a second one (the server extension and the services both know the key).
 */
export async function createOnce<T>(
  endPoint: string,
  body: unknown,
  key: string = newKey(),
  retries = 3,
  wait: (ms: number) => Promise<void> = ms => new Promise(resolve => setTimeout(resolve, ms))
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await requestAPI<T>(endPoint, { ...post(body), headers: { 'Idempotency-Key': key } });
    } catch (e) {
      const lost = e instanceof FlightbaseError ? RETRY_STATUSES.includes(e.status) : true;
      if (!lost || attempt >= retries) {
        throw e;
      }
      await wait(500 * 2 ** attempt);
    }
  }
}

export const submit = (body: ISubmitRequest, key?: string) => createOnce<ITraining>('trainings', body, key);
export const submitBuiltin = (body: IBuiltinRequest, key?: string) =>
  createOnce<ITraining>('builtin-trainings', body, key);

export type TrainingAction = 'cancel' | 'retry' | 'pause' | 'resume' | 'resubmit';
export const trainingAction = (id: string, action: TrainingAction) =>
  requestAPI<ITraining>(`trainings/${q(id)}/${action}`, post());

export const job = (id: string) => requestAPI<IJobRow>(`jobs/${q(id)}`);
export const logs = (id: string) => requestAPI<ILogs>(`jobs/${q(id)}/logs`);
export const metrics = (id: string) => requestAPI<MetricRecord[]>(`jobs/${q(id)}/metrics`);
export const cancelJob = (id: string) => requestAPI<IJobRow>(`jobs/${q(id)}/cancel`, post());
