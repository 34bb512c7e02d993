// DOM helpers shared by the pages.

export const $ = (id) => document.getElementById(id);

// An element with a class and a text; user data only ever goes in as text.
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}
