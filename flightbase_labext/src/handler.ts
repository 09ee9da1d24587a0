import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { FlightbaseError } from './tokens';

/**
 * Call the server extension: `/flightbase/<endPoint>` of this Jupyter server
 * (the one typed request helper of the front end).
 *
 * @returns The answer's JSON body
 * @throws FlightbaseError with the status, message and fields of an error answer
 */
export async function requestAPI<T>(endPoint = '', init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const requestUrl = URLExt.join(settings.baseUrl, 'flightbase', endPoint);

  let response: Response;
  try {
    response = await ServerConnection.makeRequest(requestUrl, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }

  let data: any = await response.text();
  if (data.length > 0) {
    try {
      data = JSON.parse(data);
    } catch (error) {
      console.error('Not a JSON response body.', response);
    }
  }
  if (!response.ok) {
    throw new FlightbaseError(response.status, data);
  }
  return data as T;
}
