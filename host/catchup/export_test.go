package catchup

// SetAfterPage makes r call f after each page of history marking.
func SetAfterPage(r *Registry, f func()) { r.afterPage = f }
