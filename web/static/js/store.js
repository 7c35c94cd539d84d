// What the page keeps in this browser (localStorage, prefixed "social."): the session, the last
// user id (the login field), the resume position of the live feed and the ids of your own posts.
// Follow state is NOT kept here: it comes from GET /friend/list.

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
  setJSON: (k, v) => localStorage.setItem(key(k), JSON.stringify(v)),
};
