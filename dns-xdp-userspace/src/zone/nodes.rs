//! A zone's names and their data, in shards shared between versions: a new version made by a
//! few changes copies only the shards they touch (`Arc::make_mut`), so an API write to a zone of
//! a million names copies a few thousand, not a million.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, OnceLock};

use super::Node;
use crate::name::Name;

/// Shards per map: a change copies about 1/SHARDS of the zone per touched name.
const SHARDS: usize = 256;

/// Hashed with foldhash (seeded per process): lookups run for every query the daemon answers
/// and every answer the compiler renders, and the keys come from the zone, not from clients
/// (a query only looks up, it cannot fill a bucket).
type Shard = HashMap<Name, Node, foldhash::fast::RandomState>;

/// Picks the shard: one process-wide seed, so every map agrees (maps compare shard by shard).
fn shard_of<Q: Hash + ?Sized>(key: &Q) -> usize {
    static SEED: OnceLock<foldhash::fast::RandomState> = OnceLock::new();
    (SEED.get_or_init(Default::default).hash_one(key) as usize) % SHARDS
}

#[derive(Clone, Debug)]
pub struct NodeMap {
    shards: Vec<Arc<Shard>>,
    len: usize,
}

impl Default for NodeMap {
    fn default() -> Self {
        NodeMap { shards: (0..SHARDS).map(|_| Arc::new(Shard::default())).collect(), len: 0 }
    }
}

impl NodeMap {
    pub fn get<Q>(&self, key: &Q) -> Option<&Node>
    where
        Name: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[shard_of(key)].get(key)
    }

    pub fn get_key_value<Q>(&self, key: &Q) -> Option<(&Name, &Node)>
    where
        Name: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[shard_of(key)].get_key_value(key)
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        Name: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[shard_of(key)].contains_key(key)
    }

    /// The node at `key` to change in place: its shard is copied first if another version
    /// shares it.
    pub fn get_mut(&mut self, key: &Name) -> Option<&mut Node> {
        Arc::make_mut(&mut self.shards[shard_of(key)]).get_mut(key)
    }

    pub fn insert(&mut self, key: Name, node: Node) -> Option<Node> {
        let old = Arc::make_mut(&mut self.shards[shard_of(&key)]).insert(key, node);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub fn remove(&mut self, key: &Name) -> Option<Node> {
        let old = Arc::make_mut(&mut self.shards[shard_of(key)]).remove(key);
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
        self.len == other.len && self.shards.iter().zip(&other.shards).all(|(a, b)| Arc::ptr_eq(a, b) || a == b)
    }
}

impl Eq for NodeMap {}

impl FromIterator<(Name, Node)> for NodeMap {
    fn from_iter<I: IntoIterator<Item = (Name, Node)>>(iter: I) -> Self {
        let mut map = NodeMap::default();
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
    fn versions_share_untouched_shards() {
        let names: Vec<Name> = (0..2000).map(|i| Name::from_text(&format!("h{i}.test")).unwrap()).collect();
        let a: NodeMap = names.iter().map(|n| (n.clone(), Node::default())).collect();
        let mut b = a.clone();
        b.insert(Name::from_text("new.test").unwrap(), Node::default());
        b.remove(&names[0]);
        assert_eq!((a.len(), b.len()), (2000, 2000));
        let shared = a.shards.iter().zip(&b.shards).filter(|(x, y)| Arc::ptr_eq(x, y)).count();
        assert!(shared >= SHARDS - 2, "only the touched shards are copied ({shared} shared)");
        assert!(a.contains_key(&names[0]) && !b.contains_key(&names[0]));
        assert!(b.get(Name::from_text("new.test").unwrap().as_wire()).is_some(), "lookups by wire bytes");
        assert_ne!(a, b);
        b.remove(&Name::from_text("new.test").unwrap());
        b.insert(names[0].clone(), Node::default());
        assert_eq!(a, b);
    }
}
