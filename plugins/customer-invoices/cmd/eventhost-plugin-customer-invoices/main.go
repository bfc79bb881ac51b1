// Command eventhost-plugin-customer-invoices serves the customer-invoices plugin.
package main

import (
	"github.com/eventhost/eventhost/plugins/customer-invoices"
	"github.com/eventhost/eventhost/sdk"
)

func main() { sdk.Serve(customerinvoices.New()) }
