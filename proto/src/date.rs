//! The `Date` header of every gRPC response, from a clock the node is given.
//!
//! hyper adds a `Date` header read from the machine's clock to any HTTP/2
//! response that has none. Inside the simulator that leaks real time into the
//! bytes on the wire (a header's length varies with the date), and with it
//! how segments split and tasks interleave: the same seed would not replay
//! the same run. [`DateHeaderLayer`] sets the header first, from the node's
//! own clock (the system clock for a real node, simulated time in the
//! simulator), so hyper leaves it alone.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};
use tonic::codegen::http;
use tower::{Layer, Service};

/// Where a node reads the time of day.
#[derive(Clone)]
pub struct WallClock(Arc<dyn Fn() -> SystemTime + Send + Sync>);

impl WallClock {
    /// The machine's clock.
    pub fn system() -> Self {
        WallClock(Arc::new(SystemTime::now))
    }

    /// A clock giving milliseconds since the Unix epoch.
    pub fn from_millis(now_ms: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        WallClock(Arc::new(move || {
            UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(now_ms()).unwrap_or(0))
        }))
    }

    /// The time now.
    pub fn now(&self) -> SystemTime {
        (self.0)()
    }
}

impl Default for WallClock {
    fn default() -> Self {
        Self::system()
    }
}

impl fmt::Debug for WallClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WallClock")
    }
}

/// A tower layer setting `Date` on every response (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct DateHeaderLayer {
    clock: WallClock,
}

impl DateHeaderLayer {
    /// Dates responses with `clock`.
    pub fn new(clock: WallClock) -> Self {
        DateHeaderLayer { clock }
    }
}

impl<S> Layer<S> for DateHeaderLayer {
    type Service = DateHeader<S>;

    fn layer(&self, inner: S) -> DateHeader<S> {
        DateHeader {
            inner,
            clock: self.clock.clone(),
        }
    }
}

/// The service [`DateHeaderLayer`] makes.
#[derive(Clone, Debug)]
pub struct DateHeader<S> {
    inner: S,
    clock: WallClock,
}

impl<S, Req, B> Service<Req> for DateHeader<S>
where
    S: Service<Req, Response = http::Response<B>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<B>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let response = self.inner.call(request);
        let clock = self.clock.clone();
        Box::pin(async move {
            let mut response = response.await?;
            let date = httpdate::fmt_http_date(clock.now());
            if let Ok(value) = http::HeaderValue::from_str(&date) {
                response.headers_mut().insert(http::header::DATE, value);
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    #[tokio::test]
    async fn every_response_carries_the_given_clock_s_date() {
        let clock = WallClock::from_millis(|| 1_800_000_000_000);
        let inner =
            tower::service_fn(|_: ()| async { Ok::<_, Infallible>(http::Response::new(())) });
        let mut service = DateHeaderLayer::new(clock).layer(inner);
        let response = service.call(()).await.unwrap();
        assert_eq!(
            response.headers().get(http::header::DATE).unwrap(),
            "Fri, 15 Jan 2027 08:00:00 GMT"
        );
    }
}
