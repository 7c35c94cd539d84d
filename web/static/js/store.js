// What the page keeps in this browser (localStorage, prefixed "social."): the session, the last
// user id (the login field) and the resume position of the live feed. Follow state and your own
// posts are NOT kept here: they come from the server (GET /friend/list, GET /post/list).

const key = (k) => "social." + k;

export const store = {
  get: (k) => localStorage.getItem(key(k)),
  set: (k, v) => localStorage.setItem(key(k), v),
  del: (k) => localStorage.removeItem(key(k)),
  getJSON(k, fallback) {
    try {
      const v = localStorage.getItem(key(k));
      return v === null ? fallback : JSON.parse(v);
    } catch {
      return fallback;
    }
  },
};
