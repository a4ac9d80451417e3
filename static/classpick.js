// classpick.js - the "class to explain" picker: a plain select for a handful of classes,
// and for many (VGG16's thousand) a search box that narrows the select to the classes
// whose name or number matches, so nobody scrolls through a thousand options. The first
// option is always "the predicted class", named once the prediction is known.

import { el } from './ui.js';

const SEARCH_FROM = 20;   // classes from which the search box appears
const SHOWN_MAX = 200;    // options listed at once while searching

export function createClassPicker(wrap, { onChange }) {
  const select = wrap.querySelector('select');
  const search = wrap.querySelector('input[type="search"]');
  const count = wrap.querySelector('.classpick__count');
  let classes = [], predicted = null, filter = '';

  function firstOption() {
    return el('option', { value: '', text: predicted ? `predicted: ${predicted}` : 'predicted class' });
  }

  function render() {
    const keep = select.value;
    const f = filter.trim().toLowerCase();
    let matches = classes.map((c, i) => ({ c, i }));
    if (f) matches = matches.filter(({ c, i }) => c.toLowerCase().includes(f) || String(i) === f);
    const shown = matches.slice(0, SHOWN_MAX);
    // The chosen class stays listed (and chosen) while the filter hides it.
    if (keep !== '' && !shown.some(({ i }) => String(i) === keep) && classes[Number(keep)] !== undefined) {
      shown.unshift({ c: classes[Number(keep)], i: Number(keep) });
    }
    select.replaceChildren(firstOption(), ...shown.map(({ c, i }) => el('option', { value: String(i), text: `${i} · ${c}` })));
    select.value = keep;
    if (select.value !== keep) select.value = '';
    if (count) {
      count.textContent = f ? `${matches.length} of ${classes.length} classes match` : `${classes.length} classes`;
      count.hidden = classes.length < SEARCH_FROM;
    }
  }

  select.addEventListener('change', () => onChange(select.value));
  if (search) {
    search.addEventListener('input', () => { filter = search.value; render(); });
    // Enter picks the first match: type "tabby", press Enter.
    search.addEventListener('keydown', (e) => {
      if (e.key !== 'Enter') return;
      e.preventDefault();
      const first = [...select.options].find((o) => o.value !== '');
      if (first) { select.value = first.value; onChange(select.value); }
    });
  }

  return {
    setClasses(list) {
      classes = list.slice();
      filter = '';
      if (search) {
        search.value = '';
        search.hidden = classes.length < SEARCH_FROM;
        search.placeholder = `Search ${classes.length} classes`;
      }
      select.value = '';
      render();
    },
    setPredicted(label) {
      predicted = label;
      select.options[0].textContent = label ? `predicted: ${label}` : 'predicted class';
    },
    get value() { return select.value; },
    get text() { return select.selectedOptions[0]?.textContent || ''; },
    set(v) {
      const s = v === null || v === undefined ? '' : String(v);
      if (s !== '' && classes[Number(s)] === undefined) return;
      if (s !== '' && ![...select.options].some((o) => o.value === s)) {
        filter = '';
        if (search) search.value = '';
        render();
      }
      select.value = s;
    },
  };
}
