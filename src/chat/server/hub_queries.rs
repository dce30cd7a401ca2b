//! The hub's read-only answers: who is in a room, which rooms exist, which
//! rooms a client is in. Split from `hub.rs`, which holds what changes state.

use super::{ClientId, Flavor, Hub, encode, raw_line};
use crate::chat::names;
use crate::wire::chat::{ErrorCode, MAX_LISTED, ServerMsg};

impl Hub {
    /// Lists a room's members to `id`.
    pub fn who(&mut self, id: ClientId, room: &str) {
        self.flush_batch();
        let key = names::key(room.strip_prefix('#').unwrap_or(room));
        let Some(r) = self.rooms.get(&key) else {
            return self.error(id, ErrorCode::BadRoom, &format!("no room called {room}"));
        };
        let room_name = r.name.clone();
        let (total, members) = self.listing(&key);
        let reply = match self.flavor(id) {
            Some(Flavor::Native) => encode(&ServerMsg::Who {
                room: room_name,
                total,
                members,
            }),
            Some(Flavor::Raw) => {
                raw_line(&format!("* in {room_name}: {}", raw_names(total, &members)))
            }
            None => return,
        };
        self.send_to(id, reply);
    }

    /// A room's size and the names of its first [`MAX_LISTED`] members.
    pub(super) fn listing(&self, key: &str) -> (u32, Vec<String>) {
        let Some(room) = self.rooms.get(key) else {
            return (0, Vec::new());
        };
        let names = room
            .members
            .iter()
            .filter_map(|m| self.clients.get(&m.id).map(|c| c.name.clone()))
            .take(MAX_LISTED)
            .collect();
        (room.members.len() as u32, names)
    }

    /// Lists rooms and their sizes to `id`, largest first.
    pub fn list_rooms(&mut self, id: ClientId) {
        self.flush_batch();
        let mut rooms: Vec<(String, u32)> = self
            .rooms
            .values()
            .map(|r| (r.name.clone(), r.members.len() as u32))
            .collect();
        rooms.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        rooms.truncate(1000);
        let reply = match self.flavor(id) {
            Some(Flavor::Native) => encode(&ServerMsg::Rooms { rooms }),
            Some(Flavor::Raw) => {
                let list: Vec<String> = rooms.iter().map(|(r, n)| format!("{r} ({n})")).collect();
                raw_line(&format!("* rooms: {}", list.join(", ")))
            }
            None => return,
        };
        self.send_to(id, reply);
    }

    /// The rooms `id` is in, in join order (for raw clients' current room).
    pub fn rooms_of(&self, id: ClientId) -> Vec<String> {
        self.clients
            .get(&id)
            .map(|c| c.rooms.iter().map(|k| self.rooms[k].name.clone()).collect())
            .unwrap_or_default()
    }

    pub fn name_of(&self, id: ClientId) -> Option<&str> {
        self.clients.get(&id).map(|c| c.name.as_str())
    }
}

/// `ana, bo` or `ana, bo and 998 more`.
pub(super) fn raw_names(total: u32, names: &[String]) -> String {
    let shown = names.join(", ");
    match (total as usize).checked_sub(names.len()) {
        Some(more) if more > 0 => format!("{shown} and {more} more"),
        _ => shown,
    }
}
