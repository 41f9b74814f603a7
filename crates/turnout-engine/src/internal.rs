//! Where the router listens for an app's internal (`.local`) routes on
//! a container runtime: the addresses the runtime names
//! ([`Runtime::internal_addresses`], port 80 of the app network's gateway
//! on docker), opened on the data plane before the app's first container
//! starts, and closed once the app is gone (DESIGN §6.1). On the process
//! runtime the runtime names none and nothing happens here.

use std::net::SocketAddr;

use turnout_runtime::Runtime;
use turnout_spec::Service;

use crate::controller::{Controller, DataPlane};
use crate::error::EngineError;

impl<R: Runtime + 'static, D: DataPlane> Controller<R, D> {
    /// Whether the router must listen for `services` of an app apart
    /// from the configured internal listener: the runtime's instances do
    /// not call through `HTTP_PROXY`, and the services serve or call
    /// internal routes.
    pub(crate) fn needs_internal<'a>(
        &self,
        services: impl IntoIterator<Item = &'a Service> + Clone,
    ) -> bool {
        !self.inner.runtime.proxies_calls()
            && crate::routes::uses_internal_routes(services, &self.inner.settings.domain)
    }

    /// Makes the router listen where `app`'s instances reach its internal
    /// routes, before any of them starts. Runs without the state lock (the
    /// runtime may ask an engine) and takes it only to note the addresses.
    /// An address the router cannot listen on (port 80 taken) is an error
    /// naming it; what the runtime made for a new app is let go then.
    pub(crate) async fn listen_for(&self, app: &str, new_app: bool) -> Result<(), EngineError> {
        let addrs = self
            .inner
            .runtime
            .internal_addresses(app)
            .await
            .map_err(|e| EngineError::invalid(e.to_string(), e.hint().unwrap_or_default()))?;
        for addr in &addrs {
            if let Err(e) = self.inner.plane.listen_internal(*addr) {
                if new_app {
                    self.inner.runtime.forget_app(app).await;
                }
                return Err(EngineError::invalid(
                    format!(
                        "cannot listen on {addr} for the internal (.local) routes of app {app}: {e}"
                    ),
                    format!(
                        "the .local names inside the app's containers point at {addr}, port {} \
                         of the app network's gateway, where turnout's internal router must \
                         listen; free that port (see what holds it: ss -ltnp 'sport = :{}') and \
                         deploy again",
                        addr.port(),
                        addr.port()
                    ),
                ));
            }
        }
        let mut state = self.inner.state.lock().await;
        let listening = state.listening.entry(app.to_string()).or_default();
        for addr in addrs {
            if !listening.contains(&addr) {
                listening.push(addr);
            }
        }
        Ok(())
    }

    /// Once per pass: listens for apps that need it and have no listener
    /// yet (adopted after a restart of the server), and closes the
    /// listeners of apps that are gone, unless another app uses the same
    /// address.
    pub(crate) async fn tend_listeners(&self) {
        let (wanted, gone): (Vec<String>, Vec<SocketAddr>) = {
            let mut state = self.inner.state.lock().await;
            let wanted = state
                .apps
                .values()
                .filter(|a| !state.listening.contains_key(&a.name))
                .filter(|a| self.needs_internal(a.services.values().map(|e| &e.spec)))
                .map(|a| a.name.clone())
                .collect();
            let gone_apps: Vec<String> = state
                .listening
                .keys()
                .filter(|name| !state.apps.contains_key(*name))
                .cloned()
                .collect();
            let mut gone = Vec::new();
            for name in gone_apps {
                gone.extend(state.listening.remove(&name).unwrap_or_default());
            }
            gone.retain(|addr| !state.listening.values().any(|a| a.contains(addr)));
            (wanted, gone)
        };
        for addr in gone {
            self.inner.plane.stop_listening_internal(addr);
        }
        for app in wanted {
            if let Err(e) = self.listen_for(&app, false).await {
                tracing::error!(app, error = %e, "cannot listen for the app's internal routes");
                // Not asked again every pass: starts of the app's
                // instances try again (`launch`), with their backoff.
                self.inner
                    .state
                    .lock()
                    .await
                    .listening
                    .entry(app)
                    .or_default();
            }
        }
    }
}
