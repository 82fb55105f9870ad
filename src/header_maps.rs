//! Header maps kept for reuse on the thread that let them go. A map costs two allocations (its
//! index table and its entries) and two frees; the own HTTP/1.1 server and the plain upstream
//! client make one for each request and each response, so handing cleared maps back saves four
//! of each per proxied request. Values are dropped when a map is given back, so a kept map
//! holds no message bytes.

use std::cell::RefCell;

use http::HeaderMap;

/// Maps kept per thread: a worker's requests in flight between two turns need no more, and
/// an empty map of this size holds under 2 kB.
const KEEP: usize = 32;
/// A map grown past this many entries (a message with many headers) is freed, not kept.
const MAX_ENTRIES: usize = 32;

thread_local! {
    static SPARE: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
}

/// An empty map with room for `entries`: a spare one when the thread has one.
pub fn take(entries: usize) -> HeaderMap {
    let spare = SPARE.try_with(|spare| spare.try_borrow_mut().ok().and_then(|mut spare| spare.pop()));
    match spare.ok().flatten() {
        Some(mut map) => {
            map.reserve(entries);
            map
        }
        None => HeaderMap::with_capacity(entries),
    }
}

/// Takes a map back for reuse; its headers are dropped now.
pub fn give(mut map: HeaderMap) {
    if map.capacity() > MAX_ENTRIES || map.capacity() == 0 {
        return;
    }
    map.clear();
    // During thread teardown, or if the list is full, the map is simply freed.
    let _ = SPARE.try_with(|spare| {
        if let Ok(mut spare) = spare.try_borrow_mut()
            && spare.len() < KEEP
        {
            spare.push(map);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http::header::HOST;

    #[test]
    fn a_given_map_comes_back_empty_with_its_room() {
        let mut map = take(4);
        map.insert(HOST, HeaderValue::from_static("a.example"));
        let room = map.capacity();
        give(map);
        let again = take(2);
        assert!(again.is_empty());
        assert_eq!(again.capacity(), room, "the spare map was not the one given back");
    }

    #[test]
    fn a_map_grown_large_is_not_kept() {
        let mut map = HeaderMap::with_capacity(MAX_ENTRIES * 2);
        map.insert(HOST, HeaderValue::from_static("a.example"));
        give(map);
        assert!(take(1).capacity() <= MAX_ENTRIES);
    }

    #[test]
    fn the_spare_list_is_bounded() {
        for _ in 0..KEEP * 3 {
            give(HeaderMap::with_capacity(4));
        }
        let kept = SPARE.with(|spare| spare.borrow().len());
        assert!(kept <= KEEP, "{kept} maps kept");
    }
}
