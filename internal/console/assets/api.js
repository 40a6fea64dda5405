// The REST API of the agent that served the page, with the token of this
// tab's login (sessionStorage: gone when the tab closes, never a cookie,
// so no other site can make the browser act with it).

const key = 'pgguard.token';

export const token = () => sessionStorage.getItem(key);
export const setToken = (t) => sessionStorage.setItem(key, t);
export const clearToken = () => sessionStorage.removeItem(key);

// onUnauthorized is called when the API says the token is no good.
let unauthorized = () => {};
export function onUnauthorized(f) { unauthorized = f; }

// call sends one request and resolves to {ok, status, data}; data is the
// JSON answer (an error answer is {error, plan?, hint?}).
export async function call(method, path, body) {
  const headers = {Accept: 'application/json'};
  const t = token();
  if (t) headers.Authorization = 'Bearer ' + t;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store'});
  } catch (e) {
    return {ok: false, status: 0, data: {error: 'the agent does not answer: ' + e.message}};
  }
  let data;
  try {
    data = await resp.json();
  } catch {
    data = {error: `${resp.status} ${resp.statusText}`};
  }
  if (resp.status === 401 && t && path !== '/api/v1/login') unauthorized(data.error);
  return {ok: resp.ok, status: resp.status, data};
}

export const get = (path) => call('GET', path);
