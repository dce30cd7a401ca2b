//! The upload half of a file-server session: an offer (`Put`) is told what
//! the server already has under that name (`PutReady`: nothing, a partial
//! upload to resume, or a complete file), then the bytes arrive into a
//! temporary file, are verified against the client's BLAKE3 and committed —
//! small files in batches that share one filesystem flush, large ones one
//! by one (fsync, rename). Split from `session` for size; it is the same
//! `Session`.

use super::*;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) async fn offer(
        &mut self,
        id: u32,
        path: String,
        size: u64,
        overwrite: bool,
    ) -> SessionResult {
        let Some(up) = self.ctx.cfg.uploads.clone() else {
            self.error(
                id,
                ErrorCode::NoUploads,
                "this server does not accept uploads (start it with --uploads DIR)",
            );
            return self.flush_if_full().await;
        };
        if self.offers.len() >= MAX_OFFERS {
            self.error(id, ErrorCode::Busy, "too many uploads offered at once");
            return self.flush_if_full().await;
        }
        let name = path.clone();
        let looked = tokio::task::spawn_blocking(move || look_before_upload(&up, &name))
            .await
            .map_err(blocking_failed)?;
        match looked {
            Err(e) => self.error(id, code_of(&e), &e.to_string()),
            Ok((target, state, have, hash, partial)) => {
                self.reply(&Reply::PutReady {
                    id,
                    state,
                    have,
                    have_hash: hash,
                });
                self.offers.insert(
                    id,
                    Offer {
                        name: path,
                        target,
                        size,
                        overwrite,
                        partial,
                    },
                );
            }
        }
        self.flush_if_full().await
    }

    pub(super) async fn upload(&mut self, id: u32, offset: u64, len: u64) -> SessionResult {
        let Some(offer) = self.offers.remove(&id) else {
            return self
                .fatal(
                    ErrorCode::Protocol,
                    "data for an upload that was not offered",
                )
                .await;
        };
        let Offer {
            name,
            target,
            size,
            overwrite,
            partial,
        } = offer;
        let resumable = partial.as_ref().map(|(n, _)| *n);
        if offset.checked_add(len) != Some(size) || (offset != 0 && resumable != Some(offset)) {
            return self
                .fatal(ErrorCode::Protocol, "upload data does not match its offer")
                .await;
        }
        let hasher = match partial {
            Some((_, h)) if offset != 0 => h,
            _ => blake3::Hasher::new(),
        };
        let permit = self.ctx.transfers.acquire().await;
        let part = tokio::task::spawn_blocking(move || PartFile::open(&target, offset))
            .await
            .map_err(blocking_failed)?;
        let received = match part {
            Ok(part) => {
                let r = recv_file(
                    &mut self.stream,
                    &mut self.buf,
                    part.file.try_clone().map_err(|e| e.to_string())?,
                    len,
                    hasher,
                    Flow {
                        budget: Some(&self.ctx.transfers),
                        kernel: self.kernel.clone(),
                        ..Flow::plain(&mut (), self.ctx.cfg.idle_timeout)
                    },
                )
                .await
                .map_err(|e| format!("receiving {name}: {e}"))?;
                Ok((part, r))
            }
            Err(e) => Err(e),
        };
        drop(permit);
        let end = self.next_frame().await?.map(|f| Request::decode(&f));
        let expected = match end {
            Some(Ok(Request::End { id: end_id, hash })) if end_id == id => hash,
            _ => {
                return self
                    .fatal(ErrorCode::Protocol, "expected the end of the upload")
                    .await;
            }
        };
        match received {
            Err(e) => self.error(id, ErrorCode::Io, &format!("{name}: {e}")),
            Ok((_, Received::WriteFailed(e))) => {
                tracing::warn!("{}: upload {name} failed: {e}", self.peer);
                self.error(id, ErrorCode::Io, &format!("{name}: {e}"));
            }
            Ok((part, Received::Done(_, hasher))) => {
                if size < SMALL_FILE && *hasher.finalize().as_bytes() == expected {
                    self.stored.push(part, size, overwrite, name.clone());
                    self.stored_ids.push((id, name));
                    if self.stored.full() {
                        self.commit_batch().await?;
                    }
                } else {
                    self.commit(id, name, overwrite, part, *hasher, expected)
                        .await?;
                }
            }
        }
        self.flush_if_full().await
    }

    /// Makes the waiting small uploads durable under their names (one
    /// filesystem flush) and queues their replies.
    pub(super) async fn commit_batch(&mut self) -> SessionResult {
        if self.stored.is_empty() {
            return Ok(());
        }
        let mut batch = std::mem::take(&mut self.stored);
        let ids = std::mem::take(&mut self.stored_ids);
        let errors = tokio::task::spawn_blocking(move || batch.flush())
            .await
            .map_err(blocking_failed)?;
        let mut errors = errors.into_iter().peekable();
        for (i, (id, name)) in ids.into_iter().enumerate() {
            match errors.next_if(|(at, _)| *at == i) {
                Some((_, e)) => self.refuse(id, e),
                None => self.stored_ok(id, &name),
            }
        }
        Ok(())
    }

    fn stored_ok(&mut self, id: u32, name: &str) {
        tracing::info!(
            "{}: stored {}",
            self.peer,
            crate::sanitize::for_terminal(name)
        );
        self.reply(&Reply::Stored { id });
    }

    fn refuse(&mut self, id: u32, e: crate::files::resume::CommitError) {
        let code = match e {
            crate::files::resume::CommitError::HashMismatch { .. } => ErrorCode::HashMismatch,
            crate::files::resume::CommitError::Exists { .. } => ErrorCode::Exists,
            crate::files::resume::CommitError::Io { .. } => ErrorCode::Io,
        };
        self.error(id, code, &e.to_string());
    }

    async fn commit(
        &mut self,
        id: u32,
        name: String,
        overwrite: bool,
        part: PartFile,
        hasher: blake3::Hasher,
        expected: Hash,
    ) -> SessionResult {
        let got = *hasher.finalize().as_bytes();
        let shown = name.clone();
        let done =
            tokio::task::spawn_blocking(move || part.commit(&got, &expected, overwrite, &shown))
                .await
                .map_err(blocking_failed)?;
        match done {
            Ok(()) => self.stored_ok(id, &name),
            Err(e) => self.refuse(id, e),
        }
        Ok(())
    }
}

/// What the server has under an offered upload's name: the target path,
/// state, bytes, their hash, and (for a partial) the hasher to continue.
type Looked = (
    std::path::PathBuf,
    PutState,
    u64,
    Hash,
    Option<(u64, blake3::Hasher)>,
);

fn look_before_upload(up: &crate::files::store::Store, name: &str) -> Result<Looked, StoreError> {
    let target = up.upload_target(name)?;
    let io = |source| StoreError::Io {
        name: name.to_owned(),
        source,
    };
    if let Some((hash, size)) = hash_file(&target).map_err(io)? {
        return Ok((target, PutState::Existing, size, hash, None));
    }
    if let Some(n) = partial_len(&target)
        && n > 0
        && let Some((hasher, seen)) = hash_prefix(&part_path(&target), n).map_err(io)?
    {
        let hash = *hasher.clone().finalize().as_bytes();
        return Ok((target, PutState::Partial, seen, hash, Some((seen, hasher))));
    }
    Ok((target, PutState::New, 0, zero_hash(), None))
}
