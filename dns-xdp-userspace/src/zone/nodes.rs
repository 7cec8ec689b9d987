//! A zone's names and their data, in shards shared between versions: a new version made by a
//! few changes copies only the shards they touch (`Arc::make_mut`), so an API write to a zone of
//! a million names copies a few hundred names, not a million.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, OnceLock};

use super::Node;
use crate::name::Name;

/// A map grows its shards (four times as many) once it holds more than this many names per
/// shard: a change copies at most about this many per touched name, and a small zone is one
/// shard (no memory spent on empty ones).
const PER_SHARD: usize = 256;
/// Shards of the largest maps (16M names and up keep more per shard).
const MAX_SHARDS: usize = 1 << 16;

/// Hashed with foldhash (seeded per process): lookups run for every query the daemon answers
/// and every answer the compiler renders, and the keys come from the zone, not from clients
/// (a query only looks up, it cannot fill a bucket).
type Shard = HashMap<Name, Node, foldhash::fast::RandomState>;

/// Picks the shard among `count` (a power of two): one process-wide seed, so maps with as many
/// shards agree (they compare shard by shard).
fn shard_of<Q: Hash + ?Sized>(key: &Q, count: usize) -> usize {
    static SEED: OnceLock<foldhash::fast::RandomState> = OnceLock::new();
    // The high bits: each shard's own table indexes by the low ones of its own hash.
    (SEED.get_or_init(Default::default).hash_one(key).rotate_left(24) as usize) & (count - 1)
}

#[derive(Clone, Debug)]
pub struct NodeMap {
    shards: Vec<Arc<Shard>>,
    len: usize,
}

impl Default for NodeMap {
    fn default() -> Self {
        NodeMap { shards: vec![Arc::new(Shard::default())], len: 0 }
    }
}

impl NodeMap {
    /// Room for `names` names without resharding or growing a shard (short of bad luck in
    /// how the names spread).
    pub fn with_capacity(names: usize) -> Self {
        let mut count = 1;
        while names > count * PER_SHARD && count < MAX_SHARDS {
            count *= 4;
        }
        // A shard's share, with room for the spread of a hash (a few standard deviations).
        let share = names / count;
        let room = share + 4 * share.isqrt() + 8;
        let shards = (0..count)
            .map(|_| Arc::new(Shard::with_capacity_and_hasher(room.min(names), Default::default())))
            .collect();
        NodeMap { shards, len: 0 }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&Node>
    where
        Name: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[shard_of(key, self.shards.len())].get(key)
    }

    pub fn get_key_value<Q>(&self, key: &Q) -> Option<(&Name, &Node)>
    where
        Name: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[shard_of(key, self.shards.len())].get_key_value(key)
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        Name: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[shard_of(key, self.shards.len())].contains_key(key)
    }

    /// The node at `key` to change in place: its shard is copied first if another version
    /// shares it.
    pub fn get_mut(&mut self, key: &Name) -> Option<&mut Node> {
        let at = shard_of(key, self.shards.len());
        Arc::make_mut(&mut self.shards[at]).get_mut(key)
    }

    pub fn insert(&mut self, key: Name, node: Node) -> Option<Node> {
        let count = self.shards.len();
        let old = Arc::make_mut(&mut self.shards[shard_of(&key, count)]).insert(key, node);
        if old.is_none() {
            self.len += 1;
            if self.len > count * PER_SHARD && count < MAX_SHARDS {
                self.reshard(count * 4);
            }
        }
        old
    }

    /// Spreads the names over `count` shards (a full copy: rare, as the map grows).
    fn reshard(&mut self, count: usize) {
        let mut shards: Vec<Shard> = (0..count).map(|_| Shard::default()).collect();
        for shard in std::mem::take(&mut self.shards) {
            let shard = Arc::try_unwrap(shard).unwrap_or_else(|shared| (*shared).clone());
            for (k, v) in shard {
                shards[shard_of(&k, count)].insert(k, v);
            }
        }
        self.shards = shards.into_iter().map(Arc::new).collect();
    }

    pub fn remove(&mut self, key: &Name) -> Option<Node> {
        let at = shard_of(key, self.shards.len());
        let old = Arc::make_mut(&mut self.shards[at]).remove(key);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Name, &Node)> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    /// How many shards the names are spread over. A zone transfer walks them one `shard` at a
    /// time: a few hundred names in hand, never a copy of the zone.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The names of shard `i` (of `shard_count`), in no particular order.
    pub fn shard(&self, i: usize) -> impl Iterator<Item = (&Name, &Node)> {
        self.shards.get(i).into_iter().flat_map(|s| s.iter())
    }

    pub fn keys(&self) -> impl Iterator<Item = &Name> {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &Node> {
        self.iter().map(|(_, v)| v)
    }
}

impl std::ops::Index<&Name> for NodeMap {
    type Output = Node;
    fn index(&self, key: &Name) -> &Node {
        self.get(key).expect("no node for the name")
    }
}

impl PartialEq for NodeMap {
    fn eq(&self, other: &Self) -> bool {
        if self.len != other.len {
            return false;
        }
        if self.shards.len() != other.shards.len() {
            return self.iter().all(|(k, v)| other.get(k) == Some(v));
        }
        self.shards.iter().zip(&other.shards).all(|(a, b)| Arc::ptr_eq(a, b) || a == b)
    }
}

impl Eq for NodeMap {}

impl FromIterator<(Name, Node)> for NodeMap {
    /// Sized up front from the iterator's length: as many shards as `insert` would grow to,
    /// each with room for its share. Growing instead resharded six times on the way to a
    /// million names and doubled every shard's table each time, and the tables it left behind
    /// were freed among the ones it kept: the zone's pages stayed a third empty.
    fn from_iter<I: IntoIterator<Item = (Name, Node)>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut map = NodeMap::with_capacity(iter.size_hint().0);
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}

impl<'a> IntoIterator for &'a NodeMap {
    type Item = (&'a Name, &'a Node);
    type IntoIter = Box<dyn Iterator<Item = (&'a Name, &'a Node)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collected_maps_are_sized_once_like_grown_ones() {
        let names: Vec<Name> = (0..70_000).map(|i| Name::from_text(&format!("h{i}.test")).unwrap()).collect();
        let collected: NodeMap = names.iter().map(|n| (n.clone(), Node::default())).collect();
        let mut grown = NodeMap::default();
        for n in &names {
            grown.insert(n.clone(), Node::default());
        }
        // 70,000 > 256 shards * 256 names: both end with 1,024 shards.
        assert_eq!((collected.shards.len(), grown.shards.len()), (1024, 1024));
        // No shard of the collected map had to grow past the room it was given.
        let room = collected.shards.iter().map(|s| s.capacity()).min().unwrap();
        assert!(collected.shards.iter().all(|s| s.len() <= room), "a shard outgrew its room");
        assert_eq!(collected, grown);
        assert!(names.iter().all(|n| collected.contains_key(n)));
    }

    #[test]
    fn versions_share_untouched_shards() {
        let names: Vec<Name> = (0..2000).map(|i| Name::from_text(&format!("h{i}.test")).unwrap()).collect();
        let a: NodeMap = names.iter().map(|n| (n.clone(), Node::default())).collect();
        let mut b = a.clone();
        b.insert(Name::from_text("new.test").unwrap(), Node::default());
        b.remove(&names[0]);
        assert_eq!((a.len(), b.len()), (2000, 2000));
        let shared = a.shards.iter().zip(&b.shards).filter(|(x, y)| Arc::ptr_eq(x, y)).count();
        assert_eq!(a.shards.len(), 16, "2000 names: 1, 4, then 16 shards of at most {PER_SHARD}");
        assert!(shared >= a.shards.len() - 2, "only the touched shards are copied ({shared} shared)");
        assert!(a.contains_key(&names[0]) && !b.contains_key(&names[0]));
        assert!(b.get(Name::from_text("new.test").unwrap().as_wire()).is_some(), "lookups by wire bytes");
        assert_ne!(a, b);
        b.remove(&Name::from_text("new.test").unwrap());
        b.insert(names[0].clone(), Node::default());
        assert_eq!(a, b);
        // Maps sharded differently still compare by content.
        let small: NodeMap = names[..100].iter().map(|n| (n.clone(), Node::default())).collect();
        let mut grown = a.clone();
        for n in &names[100..] {
            grown.remove(n);
        }
        assert_eq!((small.shards.len(), grown.shards.len()), (1, 16));
        assert_eq!(small, grown);
        grown.remove(&names[0]);
        assert_ne!(small, grown);
    }
}
