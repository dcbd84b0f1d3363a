//! Encoding admin result sets: all columns are text.

use bytes::{BufMut, BytesMut};

use crate::protocol::build;

/// A result set under construction.
pub struct Rows<'a> {
    out: &'a mut BytesMut,
    count: usize,
}

impl<'a> Rows<'a> {
    /// Writes the RowDescription for `columns` (text, OID 25).
    pub fn new(out: &'a mut BytesMut, columns: &[&str]) -> Rows<'a> {
        Rows::typed(out, columns, "")
    }

    /// Like `new`, with column types spelled one letter per column: `t`
    /// text, `i` int8 (as PgBouncer reports counts, so drivers see
    /// numbers); missing letters mean text.
    pub fn typed(out: &'a mut BytesMut, columns: &[&str], types: &str) -> Rows<'a> {
        let mut types = types.bytes();
        out.put_u8(b'T');
        let at = out.len();
        out.put_u32(0);
        out.put_u16(columns.len() as u16);
        for c in columns {
            let (oid, size) = match types.next() {
                Some(b'i') => (20, 8),
                _ => (25, -1),
            };
            out.put_slice(c.as_bytes());
            out.put_u8(0);
            out.put_u32(0);
            out.put_i16(0);
            out.put_u32(oid);
            out.put_i16(size);
            out.put_i32(-1);
            out.put_i16(0);
        }
        patch_len(out, at);
        Rows { out, count: 0 }
    }

    /// One row; `None` is SQL NULL.
    pub fn row(&mut self, values: &[Option<String>]) {
        self.out.put_u8(b'D');
        let at = self.out.len();
        self.out.put_u32(0);
        self.out.put_u16(values.len() as u16);
        for v in values {
            match v {
                Some(v) => {
                    self.out.put_u32(v.len() as u32);
                    self.out.put_slice(v.as_bytes());
                }
                None => self.out.put_i32(-1),
            }
        }
        patch_len(self.out, at);
        self.count += 1;
    }

    pub fn finish(self, tag: &str) {
        build::command_complete(self.out, tag);
    }
}

fn patch_len(out: &mut BytesMut, at: usize) {
    let len = (out.len() - at) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}
