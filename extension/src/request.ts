import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** The one way the panel talks to the server: /jupyter-mlops/api/<endPoint>. */
export async function requestAPI<T>(endPoint = '', init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'jupyter-mlops', 'api', endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: any = text;
  try {
    data = text.length ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text
  }
  if (!response.ok) {
    throw new ServerConnection.ResponseError(response, data?.message ?? String(data));
  }
  return data as T;
}

/** The download URL of a run's artifact. */
export function artifactURL(runId: number, name: string): string {
  const settings = ServerConnection.makeSettings();
  const encoded = name.split('/').map(encodeURIComponent).join('/');
  return URLExt.join(settings.baseUrl, 'jupyter-mlops', 'api', 'artifacts', String(runId), encoded);
}
